"""Audio-visual speech mixtures: a target talker, an interfering talker and/or noise, and the target's face.

Each example is the mixture waveform, the clean target speech, the interferer and noise as mixed,
and a generated talking face (:class:`avxai.data.talking_face.TalkingFace`) whose mouth follows the
*target's* loudness, with the mouth boxes in every frame. Target and interferer are synthetic
speakers (:class:`avxai.data.synthetic.SyntheticSpeaker`) drawn from the same population, at equal
level by default: nothing in the audio alone says which voice is the target, the face does.

Everything is deterministic in ``(seed, index)``.

Examples
--------
>>> gen = AVMixtures(range(40), config=AVMixtureConfig(duration_s=2.0), seed=0)
>>> ex = gen.example(0)               # ex.mixture (1, 16000), ex.frames (50, 112, 112, 3) uint8
>>> crops, boxes = crop_faces(ex, crop_size=64)   # (50, 3, 64, 64) in [0, 1], crop boxes (50, 4)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from avxai.data.mixtures import mix_at_snr
from avxai.data.speech_mixtures import make_noise
from avxai.data.synthetic import SyntheticSpeaker
from avxai.data.talking_face import FACES, TalkingFace
from avxai.faces import FaceTracker, crop_boxes
from avxai.io.video import VideoClip

__all__ = ["AVMixtureConfig", "AVExample", "AVMixtures", "crop_faces", "crop_geometry"]


def _pair(value, name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (float(value), float(value))
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a (low, high) range, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be a finite range with low <= high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class AVMixtureConfig:
    """How examples are made.

    sample_rate : Hz of every waveform (>= 8000, synthetic speech needs it).
    fps : frame rate of the face video; ``sample_rate / fps`` must be a whole number of samples.
    duration_s : length of an example; ``duration_s * fps`` must be a whole number of frames.
    sir_db : target power over interferer power in dB, a number or a ``(low, high)`` range drawn
        uniformly; ``None`` = no interfering talker.
    snr_db : target power over noise power in dB (number or range); ``None`` = no noise.
    noise_kind : ``"white"``, ``"band"`` or ``"babble"`` (see :func:`avxai.data.speech_mixtures.make_noise`).
    faces : stills the face is drawn from (``"astronaut"``, ``"camera"``), one per example at random.
    frame_size : ``(height, width)`` of the video frames in pixels (even).
    context : region around the face in face sizes (TalkingFace ``context``).
    head_motion_px : largest head translation in pixels.
    level_db : the mixture is scaled to this RMS in dBFS (number or range); clean parts keep the same gain.
    """

    sample_rate: int = 8000
    fps: float = 25.0
    duration_s: float = 2.0
    sir_db: "float | tuple[float, float] | None" = 0.0
    snr_db: "float | tuple[float, float] | None" = None
    noise_kind: str = "white"
    faces: tuple[str, ...] = FACES
    frame_size: tuple[int, int] = (112, 112)
    context: float = 2.2
    head_motion_px: float = 2.0
    level_db: "float | tuple[float, float]" = (-26.0, -20.0)

    def __post_init__(self):
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be an int >= 8000 Hz, got {self.sample_rate!r}")
        if not (isinstance(self.fps, (int, float)) and 1 <= self.fps <= 120):
            raise ValueError(f"fps must be in [1, 120], got {self.fps!r}")
        per_frame = self.sample_rate / self.fps
        if abs(per_frame - round(per_frame)) > 1e-9:
            raise ValueError(f"sample_rate / fps = {per_frame:g} samples per frame must be a whole number "
                             "(e.g. 8000 Hz at 25 fps) so that every frame covers the same samples")
        frames = self.duration_s * self.fps
        if not self.duration_s > 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(f"duration_s * fps = {frames:g} must be a positive whole number of frames")
        if self.sir_db is None and self.snr_db is None:
            raise ValueError("an example needs an interferer (sir_db) or noise (snr_db), or both; got neither")
        for name in ("sir_db", "snr_db"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pair(value, name))
        object.__setattr__(self, "level_db", _pair(self.level_db, "level_db"))
        if self.noise_kind not in ("white", "band", "babble"):
            raise ValueError(f"noise_kind must be 'white', 'band' or 'babble', got {self.noise_kind!r}")
        faces = tuple(self.faces)
        if not faces or any(f not in FACES for f in faces):
            raise ValueError(f"faces must be a non-empty subset of {FACES}, got {self.faces!r}")
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "frame_size", tuple(int(s) for s in self.frame_size))
        TalkingFace(face=faces[0], size=self.frame_size, context=self.context,
                    head_motion_px=self.head_motion_px)  # validates size, context and motion

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * self.fps))

    @property
    def num_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate))

    def talking_face(self, face: str, seed: int) -> TalkingFace:
        return TalkingFace(face=face, size=self.frame_size, seed=seed, context=self.context,
                           head_motion_px=self.head_motion_px)


@dataclass(frozen=True)
class AVExample:
    """One audio-visual mixture with everything known about it.

    Attributes
    ----------
    mixture : target + interferer + noise, float32.
    target : the clean target speech as mixed (same gain as the mixture).
    interferer, noise : the other parts as mixed (zeros when absent); ``mixture = target + interferer + noise``.
    frames : uint8 RGB frames of the target's talking face.
    mouth_boxes, face_boxes : x0, y0, x1, y1 in frame pixels per frame (from the generator).
    mouth_masks : bool, the pixels the mouth animation may change in each frame (lips, and the chin the jaw
        moves; see :class:`avxai.data.talking_face.TalkingFaceClip`).
    openness : mouth opening in [0, 1] per frame.
    fps, sample_rate : rates of the video and the audio.
    face : the still used; context : TalkingFace context (face sizes); target_speaker, interferer_speaker : synthetic speaker ids (``-1``: none);
    sir_db, snr_db : levels drawn (``nan``: part absent).

    Shape: waveforms ``(1, samples)``; frames ``(T, H, W, 3)``; boxes ``(T, 4)``; mouth_masks ``(T, H, W)``;
    openness ``(T,)``.
    """

    mixture: Tensor
    target: Tensor
    interferer: Tensor
    noise: Tensor
    frames: Tensor
    mouth_boxes: Tensor
    face_boxes: Tensor
    mouth_masks: Tensor
    openness: Tensor
    fps: float
    sample_rate: int
    face: str
    context: float
    target_speaker: int
    interferer_speaker: int
    sir_db: float
    snr_db: float
    seed: int

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def to_video_clip(self, audio: str = "mixture") -> VideoClip:
        """The frames with ``audio`` (``"mixture"``, ``"target"`` or ``"none"``) as a VideoClip for ``write_video``."""
        if audio == "none":
            return VideoClip(frames=self.frames, fps=self.fps)
        if audio not in ("mixture", "target"):
            raise ValueError(f"audio must be 'mixture', 'target' or 'none', got {audio!r}")
        return VideoClip(frames=self.frames, fps=self.fps, audio=getattr(self, audio).float().contiguous(),
                         sample_rate=self.sample_rate)


class AVMixtures:
    """Deterministic generator of :class:`AVExample` s.

    Parameters
    ----------
    target_speakers : synthetic speaker ids the target is drawn from.
    interferer_speakers : ids the interferer is drawn from (default: the target ids); never the target's own id.
    config : :class:`AVMixtureConfig`.
    seed : example ``i`` depends only on ``(seed, i)``.
    speaker_seed : population seed of the synthetic speakers.
    """

    def __init__(self, target_speakers: Sequence[int], interferer_speakers: Sequence[int] | None = None,
                 config: AVMixtureConfig | None = None, seed: int = 0, speaker_seed: int = 0):
        self.target_speakers = [int(s) for s in target_speakers]
        self.interferer_speakers = [int(s) for s in (interferer_speakers if interferer_speakers is not None
                                                      else target_speakers)]
        if not self.target_speakers:
            raise ValueError("target_speakers is empty; give at least one synthetic speaker id")
        self.config = config or AVMixtureConfig()
        lonely = [t for t in set(self.target_speakers) if not set(self.interferer_speakers) - {t}]
        if self.config.sir_db is not None and lonely:
            raise ValueError(f"target speaker(s) {sorted(lonely)} have no interferer: the interferer must be another "
                             "speaker than the target; give interferer ids other than the target's")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = seed
        self.speaker_seed = int(speaker_seed)
        self._speakers: dict[int, SyntheticSpeaker] = {}

    def _speaker(self, sid: int) -> SyntheticSpeaker:
        if sid not in self._speakers:
            self._speakers[sid] = SyntheticSpeaker(sid, self.speaker_seed)
        return self._speakers[sid]

    def example(self, index: int) -> AVExample:
        """Example ``index`` (>= 0); the same ``(seed, index)`` always gives the same example."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"index must be an int >= 0, got {index!r}")
        cfg = self.config
        rng = np.random.default_rng([self.seed, int(index), 0xA7])
        sr, n = cfg.sample_rate, cfg.num_samples
        tid = self.target_speakers[int(rng.integers(len(self.target_speakers)))]
        target = self._speaker(tid).utterance(cfg.duration_s, sr, seed=int(rng.integers(2**31))).reshape(1, -1).float()
        interferer = torch.zeros_like(target)
        iid, sir = -1, float("nan")
        if cfg.sir_db is not None:
            others = [s for s in self.interferer_speakers if s != tid]
            iid = others[int(rng.integers(len(others)))]
            other = self._speaker(iid).utterance(cfg.duration_s, sr, seed=int(rng.integers(2**31))).reshape(1, -1)
            sir = float(rng.uniform(*cfg.sir_db))
            interferer = mix_at_snr(target, other.float(), sir) - target
        noise = torch.zeros_like(target)
        snr = float("nan")
        noise_seed = int(rng.integers(2**31))
        if cfg.snr_db is not None:
            snr = float(rng.uniform(*cfg.snr_db))
            noise = mix_at_snr(target, make_noise(cfg.noise_kind, n, sr, noise_seed), snr) - target
        mixture = target + interferer + noise
        level = 10 ** (float(rng.uniform(*cfg.level_db)) / 20)
        gain = level / float(mixture.pow(2).mean().sqrt().clamp_min(1e-8))
        gain = min(gain, 0.95 / float(mixture.abs().max().clamp_min(1e-8)))  # never clip
        face = cfg.faces[int(rng.integers(len(cfg.faces)))]
        clip = cfg.talking_face(face, seed=int(rng.integers(2**31))).render(target, sr, fps=cfg.fps)
        if clip.num_frames != cfg.num_frames:  # pragma: no cover - guarded by the config checks
            raise RuntimeError(f"rendered {clip.num_frames} frames, expected {cfg.num_frames}")
        return AVExample(
            mixture=mixture * gain, target=target * gain, interferer=interferer * gain, noise=noise * gain,
            frames=clip.frames, mouth_boxes=clip.mouth_boxes, face_boxes=clip.face_boxes, mouth_masks=clip.mouth_masks,
            openness=clip.openness,
            fps=float(cfg.fps), sample_rate=sr, face=face, context=float(cfg.context), target_speaker=tid, interferer_speaker=iid,
            sir_db=sir, snr_db=snr, seed=self.seed,
        )

    def examples(self, count: int, start: int = 0) -> Iterator[AVExample]:
        """Examples ``start .. start + count - 1``."""
        for i in range(start, start + int(count)):
            yield self.example(i)


# ---------------------------------------------------------------------------------------------
# face crops without running the detector on every clip
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def crop_geometry(face: str, frame_size: tuple[int, int], context: float, margin: float = 0.25) -> tuple[float, float, float]:
    """Where :class:`avxai.faces.FaceTracker` (``margin``, other settings default) puts its crop box
    relative to the generator's face box of ``face``: ``(dx, dy, side)`` in face-box sides
    (box centre offset, box side). Measured once per setting by tracking a short generated clip."""

    sr = 8000
    t = torch.arange(int(1.2 * sr)) / sr
    speech = (0.5 * torch.sin(math.pi * 2.5 * t) ** 2 * torch.sin(2 * math.pi * 180 * t))[None].float()
    clip = TalkingFace(face=face, size=tuple(frame_size), context=context, head_motion_px=0.0).render(speech, sr, 25.0)
    track = FaceTracker(crop_size=32, margin=margin).track(clip.frames, f"calibration clip of {face}")
    fb, cb = clip.face_boxes.double(), track.boxes.double()
    side = (fb[:, 2:] - fb[:, :2]).max(dim=1).values
    dx = (((cb[:, 0] + cb[:, 2]) - (fb[:, 0] + fb[:, 2])) / 2 / side).mean()
    dy = (((cb[:, 1] + cb[:, 3]) - (fb[:, 1] + fb[:, 3])) / 2 / side).mean()
    s = ((cb[:, 2] - cb[:, 0]) / side).mean()
    return float(dx), float(dy), float(s)


def crop_faces(example: AVExample, crop_size: int = 64, *, margin: float = 0.25, tracker=None, jitter_px: float = 0.0,
               jitter_scale: float = 0.0, frame_jitter_px: float = 0.0,
               rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Square face crops of an example, framed as :class:`avxai.faces.FaceTracker` frames them.

    Without ``tracker`` the crop boxes are the generator's face boxes mapped with :func:`crop_geometry`
    (MTCNN runs once per face and frame size, not on every clip: fast enough for training); with a
    ``tracker`` MTCNN tracks this clip. ``jitter_px`` / ``jitter_scale`` shift the whole clip's box by up to
    that many pixels and scale it by up to that fraction; ``frame_jitter_px`` moves the box of every frame by
    a smooth random offset of that standard deviation (frame pixels, per axis), like the residual motion
    of a tracked face (MTCNN tracks the generated clips with about 0.4-0.8 px of it). Training
    augmentation; needs ``rng``.

    Shape: crops ``(T, 3, crop_size, crop_size)`` float in [0, 1]; crop boxes ``(T, 4)`` in frame pixels.
    """

    if tracker is not None:
        track = tracker.track(example.frames, "generated clip")
        return track.crops, track.boxes
    dx, dy, s = crop_geometry(example.face, tuple(example.frames.shape[1:3]), example.context, margin)
    fb = example.face_boxes.double()
    side = float((fb[:, 2:] - fb[:, :2]).max(dim=1).values.median())
    cx = (fb[:, 0] + fb[:, 2]) / 2 + dx * side
    cy = (fb[:, 1] + fb[:, 3]) / 2 + dy * side
    half = torch.full_like(cx, s * side / 2)
    if jitter_px > 0 or jitter_scale > 0 or frame_jitter_px > 0:
        if rng is None:
            raise ValueError("jitter needs rng= (a numpy Generator) so that it is reproducible")
        shift = rng.uniform(-jitter_px, jitter_px, size=2)
        cx, cy = cx + shift[0], cy + shift[1]
        half = half * (1.0 + rng.uniform(-jitter_scale, jitter_scale))
        if frame_jitter_px > 0:  # white noise smoothed over 3 frames, rescaled to the asked deviation
            noise = rng.standard_normal((len(cx) + 2, 2))
            smooth = (noise[:-2] + noise[1:-1] + noise[2:]) / 3.0
            smooth = smooth / max(float(smooth.std()), 1e-8) * frame_jitter_px
            cx = cx + torch.from_numpy(smooth[:, 0])
            cy = cy + torch.from_numpy(smooth[:, 1])
    boxes = torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1).float()
    return crop_boxes(example.frames, boxes, crop_size), boxes
