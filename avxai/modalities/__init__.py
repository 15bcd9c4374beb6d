"""Modalities: raw inputs as maskable grids, and back to the model's input."""

from avxai.checks import check_waveform
from avxai.io.audio import resample
from avxai.modalities.base import Modality
from avxai.modalities.composite import CompositeModality
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.tensor import TensorModality

__all__ = ["Modality", "CompositeModality", "Spectrogram", "TensorModality", "check_waveform", "resample"]
