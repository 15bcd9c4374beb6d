"""Generated test data: synthetic speakers, A-B-A turns, noisy speech with silences, optional TTS."""

from avxai.data.mixtures import (
    Segment,
    add_noise,
    build_aba,
    build_noisy_with_silence,
    energy_vad,
    load_segments,
    mask_to_segments,
    mix_at_snr,
    pad_with_silence,
    save_segments,
    segments_to_mask,
)
from avxai.data.speech_mixtures import heldout_speakers
from avxai.data.synthetic import SpeakerParams, SyntheticSpeaker, make_speakers
from avxai.data.tts import available_engines, synthesize

__all__ = [
    "Segment", "SpeakerParams", "SyntheticSpeaker", "add_noise", "available_engines", "build_aba",
    "build_noisy_with_silence", "energy_vad", "heldout_speakers", "load_segments", "make_speakers", "mask_to_segments",
    "mix_at_snr", "pad_with_silence", "save_segments", "segments_to_mask", "synthesize",
]
