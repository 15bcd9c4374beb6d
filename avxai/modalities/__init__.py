"""Modalities: raw inputs as maskable grids, and back to the model's input."""

from avxai.modalities.base import Modality
from avxai.modalities.spectrogram import Spectrogram, check_waveform, resample
from avxai.modalities.tensor import TensorModality

__all__ = ["Modality", "Spectrogram", "TensorModality", "check_waveform", "resample"]
