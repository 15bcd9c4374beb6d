"""Optional speech from Debian's text-to-speech engines (``espeak-ng``, ``flite``) through a subprocess.

Richer than :mod:`avxai.data.synthetic` but not required anywhere: the binaries are looked up on
``PATH`` and a clear error says how to install them when absent
(``apt-get install espeak-ng flite``). Nothing is downloaded.

Voices: espeak-ng ``en-us``, ``en-us+f2``, ``en+m3``, ... (``espeak-ng --voices``);
flite ``kal``, ``awb``, ``rms``, ``slt`` (``flite -lv``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

__all__ = ["ENGINES", "available_engines", "synthesize"]

#: engine name -> default voice
ENGINES = {"espeak-ng": "en-us", "flite": "kal"}
_INSTALL = "apt-get install espeak-ng flite"


def available_engines() -> list[str]:
    """Engines whose binary is on ``PATH``."""
    return [name for name in ENGINES if shutil.which(name)]


def _command(engine: str, binary: str, text: str, voice: str, out: Path, rate_wpm: int | None) -> list[str]:
    if engine == "espeak-ng":
        cmd = [binary, "-v", voice, "-w", str(out)]
        if rate_wpm is not None:
            cmd += ["-s", str(int(rate_wpm))]
        return cmd + ["--", text]
    return [binary, "-voice", voice, "-t", text, "-o", str(out)]


def synthesize(text: str, voice: str | None = None, engine: str = "espeak-ng", sample_rate: int = 16000,
               rate_wpm: int | None = None, timeout_s: float = 30.0) -> torch.Tensor:
    """Speak ``text`` with ``engine`` and ``voice``; return a mono float32 waveform at ``sample_rate``.

    Parameters
    ----------
    text : str
        Non-empty text to speak.
    voice : str, optional
        Engine voice (default: ``ENGINES[engine]``), e.g. ``"en-us+f2"`` (espeak-ng) or ``"slt"`` (flite).
    engine : {"espeak-ng", "flite"}
    sample_rate : int
        Output rate in Hz; the engine's output is resampled with ``torchaudio.functional.resample``.
    rate_wpm : int, optional
        Speaking rate in words per minute (espeak-ng only).

    Shape: ``(1, time)``.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown TTS engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string to speak")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
    binary = shutil.which(engine)
    if binary is None:
        raise RuntimeError(f"the TTS engine {engine!r} is not on PATH; install it with `{_INSTALL}` "
                           "or use avxai.data.synthetic, which needs no external program")
    voice = voice or ENGINES[engine]
    with tempfile.TemporaryDirectory(prefix="avxai-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        cmd = _command(engine, binary, text, voice, out, rate_wpm)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{engine} did not finish within {timeout_s} s for {len(text)} characters of text; "
                               "shorten the text or raise timeout_s") from None
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            raise RuntimeError(f"{engine} failed (exit {proc.returncode}) with voice {voice!r}: "
                               f"{proc.stderr.strip()[:300]}; check the voice name (espeak-ng --voices, flite -lv)")
        data, sr = sf.read(str(out), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise RuntimeError(f"{engine} produced an empty file for voice {voice!r}")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))).unsqueeze(0)
    if sr != sample_rate:
        wav = AF.resample(wav, orig_freq=int(sr), new_freq=sample_rate)
    return wav.contiguous()
