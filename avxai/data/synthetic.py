"""Synthetic speakers: deterministic, speech-like audio from a source-filter model.

Each :class:`SyntheticSpeaker` is a small set of voice parameters derived from
``(speaker_id, seed)``: a mean fundamental frequency (F0), a vocal-tract scale that shifts
every formant, per-formant offsets, glottal pulse shape, jitter, shimmer, breathiness and
speaking rate. An utterance is a random sequence of syllables (consonant onset, vowel,
optional fricative coda) with pauses, rendered as

    glottal pulse train (F0 contour, jitter, shimmer) + aspiration
        -> time-varying cascade of formant resonators (vowel-dependent, speaker-scaled)
    + band-pass noise for fricatives and plosive bursts,

multiplied by syllable envelopes and peak-normalised to 0.5. Only numpy, scipy and torch are used;
nothing is downloaded and the same arguments always give the same samples.

Speaker parameters are spread by a low-discrepancy (Kronecker) sequence over (log F0, tract scale),
so that the first ``n`` speaker ids cover the voice space evenly and stay distinguishable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal

__all__ = ["SpeakerParams", "SyntheticSpeaker", "make_speakers", "VOWEL_FORMANTS"]

#: Formants F1-F4 (Hz) of a reference adult vocal tract (scale 1.0), after Peterson & Barney (1952).
VOWEL_FORMANTS: dict[str, tuple[float, float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0, 3700.0),
    "I": (390.0, 1990.0, 2550.0, 3600.0),
    "e": (530.0, 1840.0, 2480.0, 3500.0),
    "ae": (660.0, 1720.0, 2410.0, 3500.0),
    "a": (730.0, 1090.0, 2440.0, 3400.0),
    "o": (570.0, 840.0, 2410.0, 3300.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
    "er": (490.0, 1350.0, 1690.0, 3300.0),
}
_NASAL_FORMANTS = (250.0, 1100.0, 2300.0, 3300.0)
_BANDWIDTHS = (70.0, 100.0, 130.0, 180.0)
_VOWELS = tuple(VOWEL_FORMANTS)

# Fricative / burst noise bands (Hz, reference tract): (low, high) edges of a band-pass.
_NOISE_BANDS = {
    "s": (4200.0, 7500.0),
    "sh": (2300.0, 4200.0),
    "f": (1500.0, 7000.0),
    "p": (500.0, 1800.0),
    "t": (3000.0, 6500.0),
    "k": (1500.0, 3200.0),
}
_FRICATIVES = ("s", "sh", "f")
_PLOSIVES = ("p", "t", "k")

# Additive-recurrence (Kronecker) steps for (log F0, tract scale): the golden ratio conjugate spreads
# F0 as evenly as possible for any number of speakers; sqrt(2) - 1 decorrelates the tract scale.
_STEPS = (0.6180339887498949, 0.4142135623730951)

_F0_RANGE_HZ = (80.0, 270.0)
_TRACT_SCALE_RANGE = (0.80, 1.25)
_BLOCK_S = 0.005  # formant update interval (s)


@dataclass(frozen=True)
class SpeakerParams:
    """Voice parameters of one synthetic speaker (all derived from ``(speaker_id, seed)``).

    ``f0_hz`` mean fundamental frequency; ``tract_scale`` multiplies every formant (> 1: shorter
    tract, higher formants); ``formant_offsets`` per-formant multipliers; ``bandwidth_scale`` scales
    formant bandwidths; ``open_quotient`` / ``speed_quotient`` shape the glottal pulse (spectral tilt);
    ``jitter`` / ``shimmer`` per-period F0 / amplitude perturbation (fractions); ``breathiness``
    aspiration noise level; ``f0_spread_st`` pitch-accent spread in semitones; ``syllable_rate``
    mean syllables per second; ``fricative_level`` noise level of consonants relative to vowels.
    """

    speaker_id: int
    seed: int
    f0_hz: float
    tract_scale: float
    formant_offsets: tuple[float, float, float, float]
    bandwidth_scale: float
    open_quotient: float
    speed_quotient: float
    jitter: float
    shimmer: float
    breathiness: float
    f0_spread_st: float
    syllable_rate: float
    fricative_level: float


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}; pass e.g. {name}=0")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (it seeds numpy's SeedSequence), got {value}")
    return int(value)


def _speaker_params(speaker_id: int, seed: int) -> SpeakerParams:
    rng = np.random.default_rng([seed, speaker_id, 0x5EED])
    # Seed-dependent offset of the Kronecker sequence, then the speaker's point in the unit square.
    base = np.random.default_rng([seed, 0xBA5E]).random(2)
    u = (base + (speaker_id + 1) * np.asarray(_STEPS)) % 1.0
    u = np.clip(u + rng.uniform(-0.02, 0.02, size=2), 0.0, 1.0)
    lo, hi = _F0_RANGE_HZ
    f0 = float(math.exp(math.log(lo) + u[0] * (math.log(hi) - math.log(lo))))
    slo, shi = _TRACT_SCALE_RANGE
    scale = float(slo + u[1] * (shi - slo))
    return SpeakerParams(
        speaker_id=speaker_id,
        seed=seed,
        f0_hz=f0,
        tract_scale=scale,
        formant_offsets=tuple(float(x) for x in rng.normal(1.0, 0.04, size=4).clip(0.9, 1.1)),
        bandwidth_scale=float(rng.uniform(0.8, 1.4)),
        open_quotient=float(rng.uniform(0.45, 0.75)),
        speed_quotient=float(rng.uniform(1.5, 3.5)),
        jitter=float(rng.uniform(0.004, 0.015)),
        shimmer=float(rng.uniform(0.02, 0.07)),
        breathiness=float(rng.uniform(0.01, 0.12)),
        f0_spread_st=float(rng.uniform(0.8, 2.5)),
        syllable_rate=float(rng.uniform(3.5, 5.5)),
        fricative_level=float(rng.uniform(0.15, 0.4)),
    )


def _resonator_sos(freqs: np.ndarray, bws: np.ndarray, sample_rate: int) -> np.ndarray:
    """Second-order sections ``(n, 6)`` of unity-DC-gain resonators (Klatt 1980)."""
    r = np.exp(-np.pi * bws / sample_rate)
    c = 2.0 * r * np.cos(2.0 * np.pi * freqs / sample_rate)
    sos = np.zeros((len(freqs), 6))
    sos[:, 0] = 1.0 - c + r * r
    sos[:, 3] = 1.0
    sos[:, 4] = -c
    sos[:, 5] = r * r
    return sos


def _raised_cosine(n: int) -> np.ndarray:
    if n <= 0:
        return np.zeros(0)
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _add_window(env: np.ndarray, start: int, stop: int, attack: int, release: int, level: float) -> None:
    """Add a trapezoid (raised-cosine edges) of height ``level`` on ``env[start:stop]`` (clipped)."""
    start, stop = max(start, 0), min(stop, len(env))
    n = stop - start
    if n <= 0:
        return
    attack, release = min(attack, n // 2), min(release, n // 2)
    w = np.ones(n)
    w[:attack] = _raised_cosine(attack)
    if release:
        w[n - release:] = _raised_cosine(release)[::-1]
    env[start:stop] = np.maximum(env[start:stop], level * w)


class SyntheticSpeaker:
    """A synthetic voice whose parameters are a deterministic function of ``(speaker_id, seed)``.

    Parameters
    ----------
    speaker_id : int
        Index of the speaker (>= 0). Consecutive ids are spread evenly over F0 and tract scale.
    seed : int
        Seed of the speaker population; the same ``(speaker_id, seed)`` is the same voice.

    Example
    -------
    >>> spk = SyntheticSpeaker(3, seed=0)
    >>> wav = spk.utterance(1.5, sample_rate=16000, seed=7)   # (1, 24000) float32, peak 0.5
    """

    def __init__(self, speaker_id: int, seed: int = 0):
        self.speaker_id = _check_int("speaker_id", speaker_id)
        self.seed = _check_int("seed", seed)
        self.params = _speaker_params(self.speaker_id, self.seed)
        self._noise_sos: dict[int, dict[str, np.ndarray]] = {}

    def __repr__(self) -> str:
        p = self.params
        return (f"SyntheticSpeaker(speaker_id={self.speaker_id}, seed={self.seed}, "
                f"f0_hz={p.f0_hz:.1f}, tract_scale={p.tract_scale:.3f})")

    def __eq__(self, other) -> bool:
        return isinstance(other, SyntheticSpeaker) and (self.speaker_id, self.seed) == (other.speaker_id, other.seed)

    def __hash__(self) -> int:
        return hash((self.speaker_id, self.seed))

    # -- helpers --------------------------------------------------------------------------------
    def _bands(self, sample_rate: int) -> dict[str, np.ndarray]:
        if sample_rate not in self._noise_sos:
            nyq = 0.5 * sample_rate
            bands = {}
            for name, (lo, hi) in _NOISE_BANDS.items():
                lo_s = min(lo * self.params.tract_scale, 0.8 * nyq)
                hi_s = min(hi * self.params.tract_scale, 0.95 * nyq)
                bands[name] = signal.butter(2, [lo_s / nyq, hi_s / nyq], btype="bandpass", output="sos")
            self._noise_sos[sample_rate] = bands
        return self._noise_sos[sample_rate]

    def _formants(self, vowel_formants: tuple[float, ...]) -> np.ndarray:
        return np.asarray(vowel_formants) * self.params.tract_scale * np.asarray(self.params.formant_offsets)

    # -- synthesis ------------------------------------------------------------------------------
    def utterance(self, duration_s: float, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
        """Render one utterance of random syllables.

        Parameters
        ----------
        duration_s : float
            Length in seconds (> 0); speech starts within the first 40 ms and fills the duration,
            with short pauses between phrases.
        sample_rate : int
            Hz, at least 8000.
        seed : int
            Utterance seed: a different seed gives a different syllable sequence, pauses and melody.

        Returns
        -------
        torch.Tensor
            float32 waveform peak-normalised to 0.5.

        Shape: ``(1, round(duration_s * sample_rate))``.
        """
        if not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) or duration_s <= 0:
            raise ValueError(f"duration_s must be a positive finite number of seconds, got {duration_s!r}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
            raise ValueError(f"sample_rate must be an int >= 8000 Hz (formants reach ~5 kHz), got {sample_rate!r}")
        seed = _check_int("seed", seed)
        sr = int(sample_rate)
        n = int(round(duration_s * sr))
        if n < 1:
            raise ValueError(f"duration_s={duration_s} gives no samples at {sr} Hz; use a longer duration")
        p = self.params
        rng = np.random.default_rng([seed, self.speaker_id, self.seed, 0xA0D10])

        # ---- 1. syllable timeline -----------------------------------------------------------
        voice_env = np.zeros(n)          # glottal source amplitude
        noise_env = np.zeros(n)          # fricative / burst amplitude
        noise_kind = np.full(n, -1, dtype=np.int8)
        kinds = list(_NOISE_BANDS)
        targets: list[tuple[int, np.ndarray]] = []   # (sample where target is reached, formants)
        accents: list[tuple[int, int, float]] = []   # (start, stop, semitones)
        phrase_starts = [0]
        t = int(rng.uniform(0.0, 0.04) * sr)
        first = True
        while t < n:
            if not first and rng.random() < 0.12:
                t += int(rng.uniform(0.08, 0.25) * sr)
                if t >= n:
                    break
                phrase_starts.append(t)
            first = False
            syl = int(sr / p.syllable_rate * rng.uniform(0.7, 1.3))
            onset = rng.choice(4, p=[0.25, 0.3, 0.3, 0.15])  # none, fricative, plosive, nasal
            pos = t
            if onset == 1:
                kind = _FRICATIVES[rng.integers(3)]
                d = int(rng.uniform(0.05, 0.10) * sr)
                _add_window(noise_env, pos, pos + d, int(0.015 * sr), int(0.01 * sr), 1.0)
                noise_kind[pos:pos + d] = kinds.index(kind)
                pos += d
            elif onset == 2:
                kind = _PLOSIVES[rng.integers(3)]
                pos += int(rng.uniform(0.03, 0.05) * sr)  # closure (silence)
                d = int(rng.uniform(0.01, 0.02) * sr)
                _add_window(noise_env, pos, pos + d, int(0.001 * sr), d // 2, 1.6)
                noise_kind[pos:pos + d] = kinds.index(kind)
                pos += d
            elif onset == 3:
                d = int(rng.uniform(0.04, 0.07) * sr)
                targets.append((pos, self._formants(_NASAL_FORMANTS)))
                _add_window(voice_env, pos, pos + d, int(0.01 * sr), int(0.005 * sr), 0.35)
                pos += d
            vowel_len = max(syl - (pos - t), int(0.06 * sr))
            vowel = _VOWELS[rng.integers(len(_VOWELS))]
            formants = self._formants(VOWEL_FORMANTS[vowel])
            targets.append((pos + int(0.04 * sr), formants))  # transition, then a steady vowel
            targets.append((pos + max(vowel_len - int(0.03 * sr), int(0.05 * sr)), formants))
            level = rng.uniform(0.6, 1.0)
            _add_window(voice_env, pos, pos + vowel_len, int(rng.uniform(0.015, 0.03) * sr),
                        int(rng.uniform(0.03, 0.06) * sr), level)
            accents.append((pos, pos + vowel_len, rng.normal(0.0, p.f0_spread_st)))
            pos += vowel_len
            if rng.random() < 0.2:  # fricative coda
                kind = _FRICATIVES[rng.integers(3)]
                d = int(rng.uniform(0.04, 0.08) * sr)
                _add_window(noise_env, pos - int(0.01 * sr), pos + d, int(0.01 * sr), int(0.015 * sr), 0.8)
                noise_kind[max(pos - int(0.01 * sr), 0):pos + d] = kinds.index(kind)
                pos += d
            t = pos + int(rng.uniform(0.0, 0.03) * sr)

        # ---- 2. F0 contour (semitones around the speaker's mean) ----------------------------
        st = np.full(n, rng.normal(0.0, 0.8))
        phrase_starts.append(n)
        for a, b in zip(phrase_starts[:-1], phrase_starts[1:]):
            if b > a:  # declination over each phrase
                st[a:b] += np.linspace(1.5, -1.5, b - a)
        for a, b, height in accents:
            a2, b2 = max(a, 0), min(b, n)
            if b2 > a2:
                st[a2:b2] += height * np.sin(np.pi * (np.arange(b2 - a2) + 0.5) / (b - a))[: b2 - a2]
        n_knots = max(int(duration_s * 8), 2)
        wander = np.interp(np.arange(n), np.linspace(0, n - 1, n_knots), rng.normal(0.0, 0.4, n_knots))
        f0 = p.f0_hz * 2.0 ** ((st + wander) / 12.0)

        # ---- 3. glottal source: Rosenberg pulses with jitter and shimmer --------------------
        max_periods = int(f0.sum() / sr * 1.2) + 8
        jitter = 1.0 + p.jitter * rng.standard_normal(max_periods)
        shimmer = 1.0 + p.shimmer * rng.standard_normal(max_periods)
        phase = np.cumsum(f0 / sr)
        k = np.minimum(phase.astype(np.int64), max_periods - 1)
        phase = np.cumsum(f0 * jitter[k] / sr)
        k = np.minimum(phase.astype(np.int64), max_periods - 1)
        frac = phase - np.floor(phase)
        oq, sq = p.open_quotient, p.speed_quotient
        tp, tn = oq * sq / (1.0 + sq), oq / (1.0 + sq)
        flow = np.where(frac < tp, 0.5 - 0.5 * np.cos(np.pi * frac / tp),
                        np.where(frac < tp + tn, np.cos(0.5 * np.pi * (frac - tp) / tn), 0.0))
        flow *= shimmer[k]
        source = np.diff(flow, prepend=flow[0]) * voice_env
        aspiration = p.breathiness * rng.standard_normal(n) * (0.3 + flow) * voice_env
        excitation = source / (np.abs(source).max() + 1e-12) + aspiration

        # ---- 4. time-varying formant cascade --------------------------------------------------
        nyq_limit = 0.45 * sr
        if not targets:
            targets = [(0, self._formants(VOWEL_FORMANTS["a"]))]
        t_idx = np.asarray([a for a, _ in targets], dtype=float)
        t_val = np.stack([f for _, f in targets])
        block = max(int(_BLOCK_S * sr), 1)
        centres = np.arange(0, n, block) + 0.5 * block
        track = np.stack([np.interp(centres, t_idx, t_val[:, j]) for j in range(4)], axis=1)
        bws = np.asarray(_BANDWIDTHS) * p.bandwidth_scale
        voiced = np.zeros(n)
        zi = np.zeros((4, 2))
        for b, start in enumerate(range(0, n, block)):
            freqs = track[b]
            keep = freqs < nyq_limit
            sos = _resonator_sos(freqs[keep], bws[keep], sr)
            seg = excitation[start:start + block]
            out, zi_k = signal.sosfilt(sos, seg, zi=zi[keep])
            zi[keep] = zi_k
            voiced[start:start + block] = out

        # ---- 5. fricatives and bursts -------------------------------------------------------
        noisy = np.zeros(n)
        if noise_env.any():
            white = rng.standard_normal(n)
            bands = self._bands(sr)
            for i, name in enumerate(kinds):
                sel = noise_kind == i
                if sel.any():
                    idx = np.flatnonzero(sel)
                    lo, hi = idx[0], idx[-1] + 1
                    filt = signal.sosfilt(bands[name], white[lo:hi])
                    noisy[lo:hi] += np.where(sel[lo:hi], filt, 0.0)
            noisy *= noise_env
        v_rms = math.sqrt(np.mean(voiced[voice_env > 0.3] ** 2)) if (voice_env > 0.3).any() else 1.0
        n_sel = noise_env > 0.3
        n_rms = math.sqrt(np.mean(noisy[n_sel] ** 2)) if n_sel.any() else 1.0
        wav = voiced + noisy * (p.fricative_level * v_rms / max(n_rms, 1e-12))

        # ---- 6. output ----------------------------------------------------------------------
        fade = min(int(0.005 * sr), n // 2)
        if fade:
            wav[-fade:] *= np.linspace(1.0, 0.0, fade)
        peak = np.abs(wav).max()
        if peak > 0:
            wav = wav * (0.5 / peak)
        return torch.from_numpy(wav.astype(np.float32)).unsqueeze(0)


def make_speakers(n: int, seed: int = 0) -> list[SyntheticSpeaker]:
    """The first ``n`` speakers (ids ``0 .. n-1``) of the population ``seed``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int (number of speakers), got {n!r}")
    return [SyntheticSpeaker(i, seed) for i in range(int(n))]

