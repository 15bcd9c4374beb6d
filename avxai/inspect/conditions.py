"""Recording conditions applied to utterances, so that an embedding map can show speaker against channel.

A condition is named ``NAME`` or ``NAME:VALUE``:

=================  ==========================================================================
``clean``          the utterance as given
``noise:SNR``      white Gaussian noise at SNR dB (seeded by the utterance's index)
``telephone``      band-pass 300-3400 Hz (a brick-wall FFT mask)
``lowpass:HZ``     low-pass at HZ (a brick-wall FFT mask)
``gain:DB``        a gain of DB dB
=================  ==========================================================================
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CONDITIONS", "parse_conditions", "apply_condition"]

#: name -> (takes a value, default value)
CONDITIONS = {"clean": (False, None), "noise": (True, 20.0), "telephone": (False, None), "lowpass": (True, 4000.0),
              "gain": (True, -10.0)}


def parse_conditions(text: "str | list[str] | tuple[str, ...]") -> tuple[str, ...]:
    """``"clean,noise:10,telephone"`` -> the checked names; a bad one raises one line listing the known ones."""
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not items:
        raise ValueError("conditions must name at least one of " + ", ".join(CONDITIONS))
    for item in items:
        name, _, value = item.partition(":")
        if name not in CONDITIONS:
            raise ValueError(f"unknown condition {item!r}; known: clean, noise:SNR_DB, telephone, lowpass:HZ, gain:DB")
        takes, _ = CONDITIONS[name]
        if value and not takes:
            raise ValueError(f"condition {name!r} takes no value, got {item!r}")
        if value:
            try:
                float(value)
            except ValueError:
                raise ValueError(f"condition {item!r}: {value!r} is not a number") from None
    if len(set(items)) != len(items):
        raise ValueError(f"conditions are named twice in {text!r}")
    return tuple(items)


def _band(wav: Tensor, sample_rate: int, low: float, high: float) -> Tensor:
    spec = torch.fft.rfft(wav, dim=-1)
    freqs = torch.fft.rfftfreq(wav.shape[-1], 1.0 / sample_rate)
    keep = ((freqs >= low) & (freqs <= high)).to(spec.dtype)
    return torch.fft.irfft(spec * keep, n=wav.shape[-1], dim=-1)


def apply_condition(waveform: Tensor, sample_rate: int, condition: str, seed: int = 0) -> Tensor:
    """``waveform`` ``(..., time)`` under ``condition`` (see the module's table). Shape: unchanged."""
    name, _, value = parse_conditions([condition])[0].partition(":")
    v = float(value) if value else CONDITIONS[name][1]
    if name == "clean":
        return waveform
    if name == "gain":
        return waveform * 10 ** (v / 20)
    if name == "telephone":
        return _band(waveform, sample_rate, 300.0, 3400.0)
    if name == "lowpass":
        return _band(waveform, sample_rate, 0.0, v)
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(waveform.shape, generator=g, dtype=waveform.dtype)
    power = waveform.pow(2).mean(dim=-1, keepdim=True).clamp_min(1e-12)
    return waveform + noise * (power / 10 ** (v / 10)).sqrt()
