"""Generated mixtures for speech enhancement and separation, with the clean references kept.

Noise kinds for enhancement: ``"white"``, ``"babble"`` (a sum of other synthetic speakers) and
``"band"`` (band-limited Gaussian noise). Separation mixtures are two synthetic speakers at a given
signal-to-interference ratio. Every function takes a seed and returns the same samples for the same
arguments. Waveforms are float32; a single signal is ``(1, time)``, a batch ``(batch, 1, time)``.

For training, :class:`UtterancePool` renders utterances of a set of speakers once and cuts random
crops from them, so that batches cost no synthesis; :func:`enhancement_batch` and
:func:`separation_batch` draw mixtures from pools. :class:`SpeechDataConfig` says which speakers a
recipe trains and measures on, and :func:`heldout_speakers` refuses a checkpoint's training speakers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from avxai.data.mixtures import mix_at_snr
from avxai.data.synthetic import SyntheticSpeaker

__all__ = [
    "NOISE_KINDS", "NoisyMixture", "SpeakerMixture", "UtterancePool", "band_limited_noise", "babble_noise",
    "white_noise", "make_noise", "noisy_utterance", "two_speaker_mixture", "SpeechDataConfig", "heldout_speakers",
    "enhancement_batch", "separation_batch",
]

#: noise kinds understood by :func:`make_noise`
NOISE_KINDS: tuple[str, ...] = ("white", "babble", "band")

#: speaker ids from which babble talkers are drawn when no pool is given (disjoint from ids 0-99)
BABBLE_SPEAKER_IDS = range(1000, 1040)


@dataclass(frozen=True)
class NoisyMixture:
    """A noisy utterance and its parts: ``noisy = clean + noise``, each ``(1, time)``."""

    noisy: Tensor
    clean: Tensor
    noise: Tensor
    kind: str
    snr_db: float


@dataclass(frozen=True)
class SpeakerMixture:
    """Two talkers: ``mixture (1, time) = sources.sum(0, keepdim=True)``, ``sources (2, time)``."""

    mixture: Tensor
    sources: Tensor
    sir_db: float


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def _check_db(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of dB, got {value!r}")
    return float(value)


def _rng(seed, tag: int) -> np.random.Generator:
    return np.random.default_rng([_check_seed(seed), tag])


# ---------------------------------------------------------------------------------------------
# noise
# ---------------------------------------------------------------------------------------------
def white_noise(n_samples: int, seed: int) -> Tensor:
    """Unit-power white Gaussian noise. Shape: ``(1, n_samples)``."""
    n = _check_positive_int("n_samples", n_samples)
    x = _rng(seed, 0x3417E).standard_normal(n)
    return torch.from_numpy((x / (x.std() + 1e-12)).astype(np.float32)).unsqueeze(0)


def band_limited_noise(n_samples: int, sample_rate: int, seed: int, low_hz: float | None = None,
                       high_hz: float | None = None) -> Tensor:
    """Unit-power Gaussian noise confined to ``[low_hz, high_hz]`` (raised-cosine band edges, 1/6 octave).

    Without a band, one is drawn from ``seed``: a centre log-uniform in 150 Hz - 0.35 * sample_rate and a
    width of 0.5 - 1.5 octaves.

    Shape: ``(1, n_samples)``.
    """
    n = _check_positive_int("n_samples", n_samples)
    sr = _check_positive_int("sample_rate", sample_rate)
    rng = _rng(seed, 0xBA4D)
    nyquist = sr / 2
    if low_hz is None and high_hz is None:
        centre = math.exp(rng.uniform(math.log(150.0), math.log(0.35 * sr)))
        width = rng.uniform(0.5, 1.5)
        low_hz, high_hz = centre * 2 ** (-width / 2), min(centre * 2 ** (width / 2), 0.98 * nyquist)
    elif low_hz is None or high_hz is None:
        raise ValueError("give both low_hz and high_hz (Hz), or neither to draw a random band")
    if not 0 <= low_hz < high_hz <= nyquist:
        raise ValueError(f"need 0 <= low_hz < high_hz <= {nyquist} Hz (Nyquist), got low_hz={low_hz}, high_hz={high_hz}")
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    octaves = np.log2(np.maximum(f, 1e-3))
    edge = 1.0 / 6.0
    lo, hi = math.log2(max(low_hz, 1e-3)), math.log2(high_hz)
    rise = np.clip((octaves - lo) / edge + 0.5, 0.0, 1.0)
    fall = np.clip((hi - octaves) / edge + 0.5, 0.0, 1.0)
    gain = (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
    x = np.fft.irfft(spec * gain, n=n)
    std = x.std()
    if std <= 0:
        raise ValueError(f"the band [{low_hz}, {high_hz}] Hz holds no FFT bin for {n} samples; widen it")
    return torch.from_numpy((x / std).astype(np.float32)).unsqueeze(0)


def babble_noise(n_samples: int, sample_rate: int, seed: int, n_talkers: int = 4,
                 speaker_ids: Sequence[int] = BABBLE_SPEAKER_IDS, speaker_seed: int = 0,
                 pool: "UtterancePool | None" = None) -> Tensor:
    """Unit-power babble: ``n_talkers`` synthetic speakers talking at once, each at the same power.

    Talkers are drawn from ``pool`` when given (crops of pre-rendered utterances), otherwise rendered
    from ``SyntheticSpeaker(id, speaker_seed)`` with ids drawn from ``speaker_ids``.

    Shape: ``(1, n_samples)``.
    """
    n = _check_positive_int("n_samples", n_samples)
    sr = _check_positive_int("sample_rate", sample_rate)
    k = _check_positive_int("n_talkers", n_talkers)
    rng = _rng(seed, 0xBABB1E)
    if pool is not None:
        if pool.sample_rate != sr:
            raise ValueError(f"the babble pool is at {pool.sample_rate} Hz but {sr} Hz was asked for")
        talkers = [pool.crop(n, rng, speaker=int(s)) for s in rng.choice(len(pool.speakers), size=k,
                                                                           replace=k > len(pool.speakers))]
    else:
        ids = list(speaker_ids)
        if not ids:
            raise ValueError("speaker_ids is empty: babble needs at least one talker id")
        chosen = rng.choice(ids, size=k, replace=k > len(ids))
        talkers = [SyntheticSpeaker(int(i), speaker_seed).utterance(n / sr, sr, seed=int(rng.integers(2**31)))
                   .reshape(-1)[:n] for i in chosen]
    x = torch.zeros(n, dtype=torch.float64)
    for t in talkers:
        x += t.double() / (t.double().pow(2).mean().sqrt() + 1e-12)
    return (x / (x.pow(2).mean().sqrt() + 1e-12)).float().unsqueeze(0)


def make_noise(kind: str, n_samples: int, sample_rate: int, seed: int, pool: "UtterancePool | None" = None) -> Tensor:
    """Unit-power noise of ``kind`` (``"white"``, ``"babble"``, ``"band"``). Shape: ``(1, n_samples)``."""
    if kind == "white":
        return white_noise(n_samples, seed)
    if kind == "babble":
        return babble_noise(n_samples, sample_rate, seed, pool=pool)
    if kind == "band":
        return band_limited_noise(n_samples, sample_rate, seed)
    raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")


# ---------------------------------------------------------------------------------------------
# single mixtures
# ---------------------------------------------------------------------------------------------
def noisy_utterance(speaker, duration_s: float, sample_rate: int, snr_db: float, kind: str, seed: int,
                    pool: "UtterancePool | None" = None) -> NoisyMixture:
    """One utterance of ``speaker`` plus ``kind`` noise at ``snr_db`` (speech power over noise power).

    ``pool`` provides the babble talkers (default: speakers ``BABBLE_SPEAKER_IDS``).

    Shape: every waveform ``(1, round(duration_s * sample_rate))``.
    """
    sr = _check_positive_int("sample_rate", sample_rate)
    snr_db = _check_db("snr_db", snr_db)
    rng = _rng(seed, 0x0E1)
    clean = speaker.utterance(duration_s, sample_rate=sr, seed=int(rng.integers(2**31))).reshape(1, -1).float()
    noise = make_noise(kind, clean.shape[-1], sr, int(rng.integers(2**31)), pool=pool)
    noisy = mix_at_snr(clean, noise, snr_db)
    return NoisyMixture(noisy=noisy, clean=clean, noise=noisy - clean, kind=kind, snr_db=snr_db)


def two_speaker_mixture(speaker_a, speaker_b, duration_s: float, sample_rate: int, sir_db: float = 0.0,
                        seed: int = 0) -> SpeakerMixture:
    """Speakers A and B talking at once; ``sir_db`` is A's power over B's. The sources are kept.

    Shape: ``mixture (1, time)``, ``sources (2, time)`` (row 0 = A, row 1 = B, as mixed).
    """
    sr = _check_positive_int("sample_rate", sample_rate)
    sir_db = _check_db("sir_db", sir_db)
    rng = _rng(seed, 0x2592)
    a = speaker_a.utterance(duration_s, sample_rate=sr, seed=int(rng.integers(2**31))).reshape(1, -1).float()
    b = speaker_b.utterance(duration_s, sample_rate=sr, seed=int(rng.integers(2**31))).reshape(1, -1).float()
    mixture = mix_at_snr(a, b, sir_db)
    sources = torch.cat([a, mixture - a])
    return SpeakerMixture(mixture=mixture, sources=sources, sir_db=sir_db)


# ---------------------------------------------------------------------------------------------
# pools and batches for training
# ---------------------------------------------------------------------------------------------
class UtterancePool:
    """Pre-rendered utterances of synthetic speakers, cut into random crops.

    Parameters
    ----------
    speaker_ids : ids of :class:`SyntheticSpeaker` (population ``speaker_seed``).
    sample_rate : Hz.
    utterances : utterances rendered per speaker.
    utterance_s : length of each rendered utterance in seconds.
    seed : seed of the utterance texts (a held-out pool uses another seed and other speakers).
    """

    def __init__(self, speaker_ids: Sequence[int], sample_rate: int, utterances: int = 8, utterance_s: float = 4.0,
                 seed: int = 0, speaker_seed: int = 0):
        self.speakers = [int(i) for i in speaker_ids]
        if not self.speakers:
            raise ValueError("an UtterancePool needs at least one speaker id")
        self.sample_rate = _check_positive_int("sample_rate", sample_rate)
        _check_positive_int("utterances", utterances)
        rng = _rng(seed, 0x9001)
        self.audio: list[list[Tensor]] = []
        for sid in self.speakers:
            spk = SyntheticSpeaker(sid, speaker_seed)
            self.audio.append([spk.utterance(utterance_s, self.sample_rate, seed=int(rng.integers(2**31))).reshape(-1)
                               for _ in range(utterances)])

    def __len__(self) -> int:
        """The number of rendered utterances (all speakers)."""
        return sum(len(a) for a in self.audio)

    def crop(self, n_samples: int, rng: np.random.Generator, speaker: int | None = None,
             min_rms: float = 0.02) -> Tensor:
        """A random ``n_samples`` crop of a random utterance of speaker index ``speaker`` (random when None).

        Crops quieter than ``min_rms`` (mostly pause) are redrawn (up to 20 times). Shape: ``(n_samples,)``.
        """
        s = int(rng.integers(len(self.speakers))) if speaker is None else speaker
        for _ in range(20):
            utt = self.audio[s][int(rng.integers(len(self.audio[s])))]
            if utt.shape[0] < n_samples:
                raise ValueError(f"pool utterances have {utt.shape[0]} samples; a crop of {n_samples} does not fit")
            start = int(rng.integers(utt.shape[0] - n_samples + 1))
            piece = utt[start:start + n_samples]
            if piece.pow(2).mean().sqrt() >= min_rms:
                break
        return piece


@dataclass(frozen=True)
class SpeechDataConfig:
    """The synthetic speakers a training recipe learns from and is measured on (fields of its ``TrainConfig``).

    Training speakers are ids ``0 .. train_speakers - 1``, each with ``train_utterances`` utterances of
    ``utterance_s`` seconds rendered once (:meth:`training_pool`); examples are ``crop_s``-second crops of
    them. Held-out speakers are the ids ``eval_speakers = [first, stop)`` above the training ids, their
    mixtures ``eval_s`` seconds long.
    """

    speaker_seed: int = 0  # SyntheticSpeaker population
    train_speakers: int = 40  # >= 2: an interferer or babble talker is another training speaker
    train_utterances: int = 6
    utterance_s: float = 4.0
    crop_s: float = 1.0
    eval_speakers: tuple[int, int] = (100, 110)
    eval_s: float = 2.0

    def __post_init__(self):
        if self.train_speakers < 2 or self.train_utterances < 1:
            raise ValueError(f"need train_speakers >= 2 (the other voices of a mixture are training speakers too) "
                             f"and train_utterances >= 1, got {self.train_speakers}, {self.train_utterances}")
        if not 0 < self.crop_s <= self.utterance_s:
            raise ValueError(f"crop_s must be in (0, utterance_s={self.utterance_s}], got {self.crop_s}")
        self.check_heldout_ids("eval_speakers", self.eval_speakers)
        if self.eval_s <= 0:
            raise ValueError(f"eval_s must be > 0 seconds, got {self.eval_s}")

    def check_heldout_ids(self, name: str, ids: tuple[int, int], at_least: int = 1) -> None:
        """Raise unless ``ids = [first, stop)`` holds ``at_least`` ids, all above the training ids."""
        lo, hi = ids
        if not (self.train_speakers <= lo and hi - lo >= at_least):
            raise ValueError(f"{name} [{lo}, {hi}) must hold >= {at_least} ids above the training ids "
                             f"0..{self.train_speakers - 1}")

    def training_pool(self, sample_rate: int, seed: int) -> UtterancePool:
        """The training speakers' utterances, rendered once (utterance texts from ``seed``)."""
        return UtterancePool(range(self.train_speakers), sample_rate, utterances=self.train_utterances,
                             utterance_s=self.utterance_s, seed=seed, speaker_seed=self.speaker_seed)


def heldout_speakers(ids: "range | list[int]", checkpoint_config: dict) -> list[SyntheticSpeaker]:
    """The synthetic speakers ``ids`` of the population a checkpoint was trained on, none of them seen in training.

    ``checkpoint_config``: the JSON beside a reference checkpoint (:func:`avxai.models.checkpoint.load_checkpoint_config`);
    its ``speakers`` entry names the population seed (``speaker_seed``) and the id range ``[first, stop)`` of the
    training speakers (``train_ids``). An id inside it raises ``ValueError``: an explanation on a training
    speaker says nothing about held-out behaviour.
    """
    info = checkpoint_config.get("speakers", {}) or {}
    ids = list(ids)
    if info.get("train_ids"):
        lo, hi = info["train_ids"]
        seen = sorted(i for i in ids if lo <= i < hi)
        if seen:
            raise ValueError(f"speaker ids {seen[:5]}{'...' if len(seen) > 5 else ''} were used in training "
                             f"(train_ids [{lo}, {hi}) of the checkpoint); choose ids outside that range")
    return [SyntheticSpeaker(i, int(info.get("speaker_seed", 0))) for i in ids]


def _levels(rng: np.random.Generator, batch: int, level_db: tuple[float, float]) -> Tensor:
    return torch.from_numpy(10 ** (rng.uniform(*level_db, size=(batch, 1, 1)) / 20)).float()


def enhancement_batch(pool: UtterancePool, batch_size: int, n_samples: int, rng: np.random.Generator,
                      snr_db: tuple[float, float] = (-5.0, 10.0), kinds: Sequence[str] = NOISE_KINDS,
                      babble_pool: UtterancePool | None = None,
                      level_db: tuple[float, float] = (-30.0, -10.0)) -> tuple[Tensor, Tensor]:
    """Random noisy speech: a crop of a pool speaker plus noise of a random kind at a random SNR.

    The mixture is scaled to an RMS drawn from ``level_db`` (dBFS); clean and noisy keep the same gain.
    Babble talkers come from ``babble_pool`` (default: ``pool``, other speakers than the target).

    Shape: ``noisy, clean (batch_size, 1, n_samples)``.
    """
    noisy, clean = [], []
    for _ in range(batch_size):
        s = int(rng.integers(len(pool.speakers)))
        speech = pool.crop(n_samples, rng, speaker=s).unsqueeze(0)
        kind = kinds[int(rng.integers(len(kinds)))]
        seed = int(rng.integers(2**31))
        if kind == "babble":
            bp = babble_pool or pool
            talkers = [i for i in range(len(bp.speakers)) if bp is not pool or i != s]
            noise = torch.zeros(n_samples)
            for i in rng.choice(talkers, size=int(rng.integers(3, 7))):
                t = bp.crop(n_samples, rng, speaker=int(i))
                noise += t / (t.pow(2).mean().sqrt() + 1e-8)
            noise = noise.unsqueeze(0)
        else:
            noise = make_noise(kind, n_samples, pool.sample_rate, seed)
        mix = mix_at_snr(speech, noise, float(rng.uniform(*snr_db)))
        gain = 1.0 / (mix.pow(2).mean().sqrt() + 1e-8)
        noisy.append(mix * gain)
        clean.append(speech * gain)
    level = _levels(rng, batch_size, level_db)
    return torch.stack(noisy) * level, torch.stack(clean) * level


def separation_batch(pool: UtterancePool, batch_size: int, n_samples: int, rng: np.random.Generator,
                     sir_db: tuple[float, float] = (-2.5, 2.5),
                     level_db: tuple[float, float] = (-30.0, -10.0)) -> tuple[Tensor, Tensor]:
    """Random two-speaker mixtures of two different pool speakers at an SIR drawn from ``sir_db``.

    Shape: ``mixture (batch_size, 1, n_samples)``, ``sources (batch_size, 2, n_samples)``;
    ``mixture == sources.sum(1, keepdim=True)``.
    """
    if len(pool.speakers) < 2:
        raise ValueError("separation mixtures need a pool of at least two speakers")
    mixes, sources = [], []
    for _ in range(batch_size):
        a, b = rng.choice(len(pool.speakers), size=2, replace=False)
        sa = pool.crop(n_samples, rng, speaker=int(a)).unsqueeze(0)
        sb = pool.crop(n_samples, rng, speaker=int(b)).unsqueeze(0)
        mix = mix_at_snr(sa, sb, float(rng.uniform(*sir_db)))
        gain = 1.0 / (mix.pow(2).mean().sqrt() + 1e-8)
        mixes.append(mix * gain)
        sources.append(torch.cat([sa, mix - sa]) * gain)
    level = _levels(rng, batch_size, level_db)
    return torch.stack(mixes) * level, torch.stack(sources) * level
