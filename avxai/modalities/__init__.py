"""Modalities: raw inputs as maskable grids, and back to the model's input."""

from avxai.modalities.base import Modality
from avxai.modalities.spectrogram import Spectrogram, check_waveform, resample

__all__ = ["Modality", "Spectrogram", "check_waveform", "resample"]
