"""Scorers: what "the result" of a model is, one number per input (higher = more evidence)."""

from avxai.scorers.base import Scorer
from avxai.scorers.classification import ClassLogit, ClassLogProbability, ClassProbability, ClassSigmoid
from avxai.scorers.frames import FRAME_OUTPUTS, FRAME_REDUCTIONS, FrameScore
from avxai.scorers.level import LevelSDR, LevelSISDR
from avxai.scorers.sdr import SDR, SISDR, ReferenceScorer, bss_sdr, si_sdr
from avxai.scorers.speaker import SpeakerCosine

__all__ = ["Scorer", "ClassLogit", "ClassLogProbability", "ClassProbability", "ClassSigmoid", "FrameScore",
           "FRAME_OUTPUTS", "FRAME_REDUCTIONS", "SDR", "SISDR", "LevelSDR", "LevelSISDR", "ReferenceScorer", "bss_sdr", "si_sdr",
           "SpeakerCosine"]
