"""Real test utterances with known answers, built from the bundled recordings of two real talkers.

The recordings are ``avxai/assets/real/`` (Debian's codec2-examples, LGPL-2.1; see ``avxai/assets/README.md`` and
``scripts/make_real_speech.py``): talker A (female) and talker B (male), two sentences each in turns
(``aba.wav``: A1 B1 A2, ``bab.wav``: B1 A1 B2, with their turns in ``*_segments.json``) and one separate
enrollment recording per talker (``enroll_A.wav``, ``enroll_B.wav``: other sentences than the turns).

* :func:`turns_utterance` gives ``"ABA"`` or ``"BAB"`` with the turns of each talker and both enrollments
  (the target is the talker with two turns);
* :func:`speech_with_gaps_and_noise` gives one talker's two sentences cut into pieces of about ``piece_s``
  seconds with ``gap_s`` seconds of silence between them (and at both ends), white noise added at ``snr_db``
  relative to the speech power, and the speech pieces as segments.

Everything is float32 at ``sample_rate`` (16 kHz, the recordings' rate; another rate is resampled with
torchaudio's band-limited sinc); a waveform is ``(channels, time)`` = ``(1, time)``; times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from avxai.data.mixtures import Segment, add_noise, load_segments
from avxai.io.audio import load_audio
from avxai.models.state import ASSETS_DIR

__all__ = ["REAL_RATE", "RealUtterance", "real_dir", "speech_with_gaps_and_noise", "turns_utterance"]

#: the sample rate of the bundled real recordings (Hz)
REAL_RATE = 16000
TALKERS = ("A", "B")
#: raised-cosine fade at each cut of :func:`speech_with_gaps_and_noise` (s)
FADE_S = 0.01


def real_dir() -> Path:
    """The folder of the bundled real recordings, ``avxai/assets/real``."""
    return ASSETS_DIR / "real"


@dataclass(frozen=True)
class RealUtterance:
    """A real test utterance and where its evidence lies.

    waveform : ``(1, time)`` float32 at ``sample_rate`` Hz.
    segments : label -> ``[(start_s, end_s), ...]``: the turns of ``"A"`` and ``"B"``, or ``"speech"``.
    enroll : talker -> that talker's enrollment waveform ``(1, time)`` (other sentences than the utterance's).
    target : the label whose segments hold the evidence the explanation should find (``"A"``, ``"B"`` or
        ``"speech"``); ``speaker`` the talker the target speech belongs to.

    Shape: waveform ``(channels, time)`` = ``(1, time)``.
    """

    waveform: Tensor
    sample_rate: int
    segments: dict[str, list[tuple[float, float]]]
    enroll: dict[str, Tensor]
    target: str
    speaker: str
    metadata: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate

    def segment_list(self) -> list[dict]:
        """The segments as ``[{"start_s", "end_s", "label"}, ...]`` in time order (the format of the tasks'
        ``segments`` option and of :func:`avxai.data.mixtures.save_segments`)."""
        rows = [{"start_s": s, "end_s": e, "label": label} for label, spans in self.segments.items()
                for s, e in spans]
        return sorted(rows, key=lambda r: r["start_s"])

    def target_share(self) -> float:
        """The fraction of the utterance's duration inside the target's segments: the share a uniform map
        puts there."""
        return sum(e - s for s, e in self.segments[self.target]) / self.duration_s


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 4000:
        raise ValueError(f"sample_rate must be an int in Hz >= 4000 (e.g. 16000), got {sample_rate!r}")
    return sample_rate


def _read(name: str, sample_rate: int) -> Tensor:
    """A bundled recording as ``(1, time)`` float32 at ``sample_rate``."""
    wav, _ = load_audio(real_dir() / name, sample_rate=sample_rate, resample=True, mono=True)
    return wav[0]


def _turns(name: str) -> list[Segment]:
    return load_segments(real_dir() / f"{name}_segments.json")


def _enrollments(sample_rate: int) -> dict[str, Tensor]:
    return {t: _read(f"enroll_{t}.wav", sample_rate) for t in TALKERS}


def turns_utterance(order: str, *, sample_rate: int = REAL_RATE, target_turn_s: float | None = None) -> RealUtterance:
    """``"ABA"`` (A, B, A: target A) or ``"BAB"`` (B, A, B: target B) from the two real talkers.

    Three sentences, one per turn, back to back (each at -26 dBFS RMS); ``segments`` holds the turns of A
    and of B in seconds, ``enroll`` both talkers' separate enrollment recordings. The target's two turns fill
    about two thirds of the time; ``target_turn_s`` (seconds) keeps only the first ``target_turn_s`` of each
    target turn (cut at the quietest 20 ms within 0.15 s of it, faded over 10 ms), so that a uniform map's
    share drops (1.0 s: 0.46) and the test discriminates more.

    Shape: waveform ``(1, time)`` (7.15 s for ABA, 7.00 s for BAB at 16 kHz, without ``target_turn_s``).
    """
    if not isinstance(order, str) or order.upper() not in ("ABA", "BAB"):
        raise ValueError(f"order must be 'ABA' or 'BAB' (the turns of the two real talkers), got {order!r}")
    order = order.upper()
    rate = _check_rate(sample_rate)
    name = order.lower()
    if target_turn_s is not None and (isinstance(target_turn_s, bool) or not isinstance(target_turn_s, (int, float))
                                      or not 0.3 <= target_turn_s <= 2.0):
        raise ValueError(f"target_turn_s must be None or seconds in [0.3, 2.0], got {target_turn_s!r}")
    wav = _read(f"{name}.wav", rate)
    segments: dict[str, list[tuple[float, float]]] = {t: [] for t in TALKERS}
    parts, pos = [], 0
    for seg in _turns(name):
        turn = wav[0, round(seg.start_s * rate):round(seg.end_s * rate)]
        if target_turn_s is not None and seg.label == order[0]:
            turn = _crop(turn, rate, float(target_turn_s))
        segments[seg.label].append((pos / rate, (pos + turn.numel()) / rate))
        parts.append(turn)
        pos += turn.numel()
    return RealUtterance(torch.cat(parts).unsqueeze(0), rate, segments, _enrollments(rate), target=order[0],
                         speaker=order[0], metadata={"source": f"avxai/assets/real/{name}.wav", "order": order,
                                                     "target_turn_s": target_turn_s})


def speech_with_gaps_and_noise(*, snr_db: float, seed: int, gap_s: float = 0.5, piece_s: float = 0.5,
                               talker: str = "A", sample_rate: int = REAL_RATE) -> RealUtterance:
    """One real talker with silences and white noise: a gap, a piece of speech, a gap, ... , a gap.

    ``talker``'s two turn sentences (from ``aba.wav`` for A, ``bab.wav`` for B) are cut into pieces of about
    ``piece_s`` seconds, each cut placed at the quietest 20 ms within ``piece_s / 3`` of its nominal time (so
    cuts fall in the pauses between syllables where there are any) and faded over 10 ms; ``gap_s`` seconds of
    digital silence go before, between and after the pieces. White Gaussian noise (seeded with ``seed``) is
    added everywhere at ``snr_db`` dB relative to the power of the speech samples. ``segments["speech"]``
    holds the pieces; ``enroll`` both talkers' enrollment recordings.

    Shape: waveform ``(1, time)``.
    """
    if talker not in TALKERS:
        raise ValueError(f"talker must be 'A' or 'B', got {talker!r}")
    for name, value in (("gap_s", gap_s), ("piece_s", piece_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 10:
            raise ValueError(f"{name} must be a number of seconds in [0.05, 10], got {value!r}")
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number in dB (e.g. 5), got {snr_db!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    rate = _check_rate(sample_rate)
    name = "aba" if talker == "A" else "bab"
    source = _read(f"{name}.wav", rate)[0]
    sentences = [source[round(s.start_s * rate):round(s.end_s * rate)] for s in _turns(name) if s.label == talker]
    pieces = [p for sentence in sentences for p in _cut_pieces(sentence, rate, piece_s)]
    gap = torch.zeros(round(gap_s * rate))
    parts, spans, pos = [gap], [], gap.numel()
    for piece in pieces:
        spans.append((pos / rate, (pos + piece.numel()) / rate))
        parts += [piece, gap]
        pos += piece.numel() + gap.numel()
    clean = torch.cat(parts).unsqueeze(0)
    active = torch.zeros(clean.shape[-1], dtype=torch.bool)
    for s, e in spans:
        active[round(s * rate):round(e * rate)] = True
    noisy = add_noise(clean, float(snr_db), seed, kind="white", active=active).float()
    return RealUtterance(noisy, rate, {"speech": spans}, _enrollments(rate), target="speech", speaker=talker,
                         metadata={"source": f"avxai/assets/real/{name}.wav", "snr_db": float(snr_db), "seed": seed,
                                   "gap_s": float(gap_s), "piece_s": float(piece_s), "clean": clean})


def _crop(turn: Tensor, rate: int, keep_s: float) -> Tensor:
    """The first ``keep_s`` seconds of ``turn`` ``(time,)``, cut at the quietest 20 ms within 0.15 s, faded."""
    frame = max(1, round(0.02 * rate))
    energy = torch.nn.functional.avg_pool1d(turn.square().view(1, 1, -1), frame, stride=1).view(-1)
    lo, hi = round((keep_s - 0.15) * rate), min(energy.numel(), round((keep_s + 0.15) * rate))
    if hi <= lo:
        return turn.clone()
    end = lo + int(energy[lo:hi].argmin()) + frame // 2
    return _faded(turn[:end], rate)


def _faded(piece: Tensor, rate: int) -> Tensor:
    """A copy of ``piece`` ``(time,)`` with raised-cosine fades of :data:`FADE_S` at both ends."""
    piece = piece.clone()
    n_fade = round(FADE_S * rate)
    if piece.numel() > 2 * n_fade:
        fade = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, n_fade))
        piece[:n_fade] *= fade
        piece[-n_fade:] *= fade.flip(0)
    return piece


def _cut_pieces(sentence: Tensor, rate: int, piece_s: float) -> list[Tensor]:
    """``sentence`` ``(time,)`` cut into pieces of about ``piece_s`` s at the quietest 20 ms near each nominal cut,
    each faded in and out over :data:`FADE_S`."""
    frame = max(1, round(0.02 * rate))
    energy = torch.nn.functional.avg_pool1d(sentence.square().view(1, 1, -1), frame, stride=1).view(-1)
    n_pieces = max(1, round(sentence.numel() / (piece_s * rate)))
    length = sentence.numel() / n_pieces
    reach = round(length / 3)
    cuts = [0]
    for k in range(1, n_pieces):
        nominal = round(k * length)
        lo, hi = max(cuts[-1] + frame, nominal - reach), min(sentence.numel() - frame, nominal + reach)
        cuts.append(lo + int(energy[lo:hi].argmin()) + frame // 2 if hi > lo else nominal)
    cuts.append(sentence.numel())
    return [_faded(sentence[a:b], rate) for a, b in zip(cuts[:-1], cuts[1:])]
