"""One audit trial end to end, and the resumable store of finished trials.

Per trial (:func:`run_trial`): the verification score (cosine between the embeddings of the test and the
enrollment, :class:`avxai.scorers.SpeakerCosine` with the model's embedder), the explanation of that score
on the test utterance's spectrogram (occlusion or extremal perturbation), and statistics:

* ``preserved`` / ``deleted``: the score of the input that keeps only the mask of each area, and of the
  input with that mask removed (extremal: its optimised masks; occlusion: the top-``area`` cells);
* ``curve``: the deletion curve, the score as the most relevant cells are removed step by step;
* ``speech``: mask mass in speech-active frames (energy-based voice activity) vs non-speech frames, the
  excess of non-speech mass over the non-speech share of the frames, and the score of the input reduced to
  its speech frames and to its non-speech frames;
* ``target`` / ``interferer``: mask mass in the labelled segments of the test utterance (when labelled).

:class:`ResultStore` appends one JSON line per finished trial to ``results.jsonl`` (after the trial's
figure and audio are written), keeps the hash of everything that determines the results in ``audit.json``
and refuses to continue a folder written with different arguments.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor

from avxai.audit.trials import Trial, file_digest

__all__ = ["ARCHITECTURES", "AuditConfig", "ModelSpec", "TrialPayload", "TrialOutcome", "ResultStore", "load_model_spec",
           "run_trial", "run_batch", "voice_activity", "prepare_payload", "failed_outcome", "FORMAT_VERSION"]

FORMAT_VERSION = 1
METHODS = ("occlusion", "extremal")


def _fraction_tuple(value: Any, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in ((value,) if isinstance(value, (int, float)) else value))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be fractions of the grid such as (0.05, 0.1, 0.2), got {value!r}") from None
    if not out or any(not (0.0 < a < 1.0) for a in out):
        raise ValueError(f"{name} must hold fractions strictly between 0 and 1, got {value!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} holds duplicates {out}; list each area once")
    return tuple(sorted(out))


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines an audit's per-trial results (hashed into the output folder).

    method : ``"occlusion"`` or ``"extremal"``.
    method_options : extra fields of the method's config as ``((name, value), ...)`` (e.g.
        ``(("iterations", 100),)``); ``areas``/``media_area`` (extremal) and ``window``/``stride``/
        ``batch_size`` (occlusion) come from the fields below.
    areas : mask areas (fractions of the grid) for the preserved / deleted scores and the mask statistics.
    media_area : the area whose mask is drawn and played in the report; ``None``: the middle area.
    window, stride : occlusion window and stride in cells ``(freq bins, frames)``; ``stride=None``: the
        window (no overlap: one forward pass per window position, cheap enough for thousands of trials).
    n_fft, hop_length, n_mels : the spectrogram the explanation lives on (samples; mel bands or ``None``).
    perturbation : what removed cells become (``"zero"``, ``"noise:10"``, ...).
    resample, mono : resample audio to the model's rate / average channels; otherwise a mismatch fails.
    min_duration_s : shorter test or enrollment utterances fail with a clear error.
    vad_frame_s, vad_threshold_db, vad_floor_margin_db : voice activity (see :func:`voice_activity`).
    curve_steps : steps of the deletion curve.
    batch_size : perturbed inputs per forward pass.
    """

    method: str = "occlusion"
    method_options: tuple[tuple[str, Any], ...] = ()
    areas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    media_area: float | None = None
    window: tuple[int, int] = (32, 20)
    stride: tuple[int, int] | None = None
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int | None = None
    perturbation: str = "zero"
    resample: bool = False
    mono: bool = False
    min_duration_s: float = 0.5
    vad_frame_s: float = 0.02
    vad_threshold_db: float = -30.0
    vad_floor_margin_db: float = 6.0
    curve_steps: int = 10
    batch_size: int = 32

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"the audit explains with {' or '.join(METHODS)}; got method {self.method!r}")
        object.__setattr__(self, "areas", _fraction_tuple(self.areas, "areas"))
        if self.media_area is not None and float(self.media_area) not in self.areas:
            raise ValueError(f"media_area {self.media_area} is not one of the areas {self.areas}")
        opts = self.method_options.items() if isinstance(self.method_options, Mapping) else self.method_options
        object.__setattr__(self, "method_options", tuple(sorted((str(k), _freeze(v)) for k, v in opts)))
        for name in ("window", "stride"):
            value = getattr(self, name)
            if value is None:
                continue
            value = (int(value),) * 2 if isinstance(value, int) else tuple(int(v) for v in value)
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"{name} must be two cell counts (freq bins, frames) >= 1, got {getattr(self, name)}")
            object.__setattr__(self, name, value)
        for name in ("n_fft", "hop_length", "curve_steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.n_mels is not None and (not isinstance(self.n_mels, int) or self.n_mels < 1):
            raise ValueError(f"n_mels must be a positive int or None, got {self.n_mels!r}")
        if not self.min_duration_s >= 0:
            raise ValueError(f"min_duration_s must be >= 0 seconds, got {self.min_duration_s}")
        if not self.vad_frame_s > 0:
            raise ValueError(f"vad_frame_s must be > 0 seconds, got {self.vad_frame_s}")
        if not self.vad_threshold_db < 0:
            raise ValueError(f"vad_threshold_db must be negative (dB below the loudest frame), got {self.vad_threshold_db}")
        if not self.vad_floor_margin_db >= 0:
            raise ValueError(f"vad_floor_margin_db must be >= 0 dB, got {self.vad_floor_margin_db}")
        bins = self.n_mels or self.n_fft // 2 + 1
        if self.method == "occlusion" and self.window[0] > bins:
            raise ValueError(f"the occlusion window {self.window} is taller than the spectrogram's {bins} "
                             f"{'mel bands' if self.n_mels else 'frequency bins'}; use a window of at most {bins}")
        from avxai.perturbations import parse_perturbation

        parse_perturbation(self.perturbation)
        self.method_config()  # validates the method options now, not in the middle of the audit

    @property
    def display_area(self) -> float:
        return float(self.media_area) if self.media_area is not None else self.areas[len(self.areas) // 2]

    def method_config(self):
        """The method's frozen config (``OcclusionConfig`` / ``ExtremalConfig``)."""
        from avxai.methods import get_method

        cls = get_method(self.method).config_class
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        if self.method == "occlusion":
            values.update(window=self.window, stride=self.stride or self.window, batch_size=self.batch_size)
        else:
            values.update(areas=self.areas, media_area=self.display_area)
        for key, value in self.method_options:
            if key not in names:
                raise ValueError(f"{cls.__name__} has no field {key!r}; its fields are {sorted(names)}")
            if key in ("areas", "media_area"):
                raise ValueError(f"set {key} on the audit (--areas, --media-area), not as a method option")
            values[key] = value
        if "progress" in names:
            values["progress"] = False
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})

    def to_dict(self) -> dict:
        from avxai.explanation import to_jsonable

        d = {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}
        d["method_options"] = {k: to_jsonable(v) for k, v in self.method_options}
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "AuditConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"AuditConfig has no field(s) {unknown}; its fields are {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------------------------------
# the model, as bytes that travel to worker processes and Ray nodes
# ---------------------------------------------------------------------------------------------
#: what an audit can build from a checkpoint: ``config["architecture"]`` -> description
ARCHITECTURES = {
    "speakernet": "avxai's SpeakerNet (the reference model; its .json holds the SpeakerNet arguments)",
    "ecapa-tdnn": "SpeechBrain's ECAPA-TDNN embedder (e.g. embedding_model.ckpt of spkrec-ecapa-voxceleb; "
                  "needs the speechbrain extra)",
}


@dataclass(frozen=True)
class ModelSpec:
    """A speaker checkpoint in memory: its config and state-dict bytes, and their SHA-256.

    ``config["architecture"]`` (default ``"speakernet"``) says what to build, ``config["model"]`` its keyword
    arguments (:data:`ARCHITECTURES`: ``SpeakerNet(**model)`` or :func:`avxai.models.load_ecapa_tdnn` with
    ``sample_rate``, ``n_mels``, ``key``, ``strip_prefix`` and ECAPA-TDNN's arguments). Workers build the model
    from it (:meth:`build`, cached per process), so no worker needs the file.
    """

    path: str
    config: dict = field(hash=False, compare=False)
    state: bytes = field(repr=False)
    digest: str = ""

    def build(self):
        """The model in eval mode, with ``sample_rate`` and ``embedder()`` (cached per process by digest)."""
        model = _MODELS.get(self.digest)
        if model is None:
            architecture = self.config.get("architecture", "speakernet")
            kwargs = dict(self.config.get("model") or {})
            state = torch.load(io.BytesIO(self.state), map_location="cpu", weights_only=True)
            if architecture == "speakernet":
                from avxai.models.checkpoint import load_state_dict_checked
                from avxai.models.speaker import SpeakerNet

                try:
                    model = SpeakerNet(**kwargs)
                except TypeError as err:
                    raise ValueError(f"the config of {self.path} does not fit SpeakerNet: {err}") from None
                load_state_dict_checked(model, state)
            elif architecture == "ecapa-tdnn":
                from avxai.models.loaders import load_ecapa_tdnn

                try:
                    model = load_ecapa_tdnn(state, **kwargs)
                except ValueError as err:  # the state dict was read from bytes: name the file it came from
                    raise ValueError(f"{self.path}: {err}") from None
            else:
                raise ValueError(f"{self.path}: unknown architecture {architecture!r}; the audit builds "
                                 f"{', '.join(ARCHITECTURES)}")
            model.eval()
            _MODELS.clear()
            _MODELS[self.digest] = model
        return model


_MODELS: dict[str, Any] = {}


def load_model_spec(path: "str | Path | None" = None, architecture: str | None = None) -> ModelSpec:
    """Read a speaker checkpoint (default: the bundled ``assets/speaker/speaker_net.pt``) and check it builds.

    The config is the JSON beside the checkpoint (same name, ``.json``). ``architecture`` (a key of
    :data:`ARCHITECTURES`) builds a checkpoint that has no JSON with that architecture's defaults, or checks
    the JSON's architecture; e.g. ``load_model_spec("embedding_model.ckpt", "ecapa-tdnn")`` for SpeechBrain's
    ``spkrec-ecapa-voxceleb`` (16 kHz, 80 mel bands, 192-dimensional embeddings).
    """
    from avxai.models.checkpoint import DEFAULT_SPEAKER_CHECKPOINT, config_path, load_checkpoint_config

    if architecture is not None and architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")

    if path is None:
        path = DEFAULT_SPEAKER_CHECKPOINT
        if not Path(path).is_file():
            raise FileNotFoundError(f"the bundled speaker model {path} is missing; pass --model CHECKPOINT.pt or "
                                    "create it with `python recipes/speaker/train.py`")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint {path} does not exist")
    if config_path(path).is_file():
        config = load_checkpoint_config(path)
        found = config.get("architecture", "speakernet")
        if architecture is not None and architecture != found:
            raise ValueError(f"{config_path(path)} describes a {found!r} model but --architecture {architecture} was "
                             "given; drop the flag or fix the JSON's \"architecture\"")
    elif architecture not in (None, "speakernet"):
        config = {"architecture": architecture, "model": {}}
    else:
        raise ValueError(f"{path} has no {config_path(path).name} beside it: the audit needs the model's config. For "
                         "a checkpoint avxai did not write, name its architecture (--architecture ecapa-tdnn) or put "
                         'a JSON beside it, e.g. {"architecture": "ecapa-tdnn", "model": {"sample_rate": 16000}}')
    state = path.read_bytes()
    digest = hashlib.sha256(state + json.dumps(config, sort_keys=True).encode()).hexdigest()
    spec = ModelSpec(path=str(path), config=config, state=state, digest=digest)
    spec.build()
    return spec


# ---------------------------------------------------------------------------------------------
# per-trial work
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialPayload:
    """A trial and the bytes of its two audio files (read by the driver), or the error reading them."""

    trial: Trial
    enroll: bytes | None = field(default=None, repr=False)
    test: bytes | None = field(default=None, repr=False)
    error: str | None = None


@dataclass
class TrialOutcome:
    """The JSON record of a finished trial and the files (relative path -> bytes) that go with it."""

    record: dict
    files: dict[str, bytes] = field(default_factory=dict)


def prepare_payload(trial: Trial) -> TrialPayload:
    """Read the trial's audio bytes; a file that cannot be read becomes the payload's error."""
    data = {}
    for name in ("enroll", "test"):
        p = Path(getattr(trial, f"{name}_path"))
        try:
            data[name] = p.read_bytes()
        except OSError as err:
            why = "does not exist" if isinstance(err, FileNotFoundError) else f"cannot be read ({err.strerror or err})"
            return TrialPayload(trial, error=f"{name} audio {getattr(trial, name)} ({p}) {why}")
    return TrialPayload(trial, data["enroll"], data["test"])


def failed_outcome(trial: Trial, err: "BaseException | str", seconds: float = 0.0) -> TrialOutcome:
    """The record of a trial that failed with ``err`` (the audit goes on)."""
    if isinstance(err, BaseException):
        error = {"type": type(err).__name__, "message": str(err) or repr(err)}
    else:
        error = {"type": "Error", "message": str(err)}
    record = {**trial.describe(), "status": "error", "error": error, "seconds": round(seconds, 3)}
    return TrialOutcome(record)


def _decode(name: str, shown: str, data: bytes, rate: int, config: AuditConfig) -> Tensor:
    """Audio bytes -> ``(1, 1, time)`` float32 at ``rate`` Hz; ``ValueError`` saying what is wrong."""
    import soundfile as sf

    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on unreadable data
        raise ValueError(f"cannot read {name} audio {shown}: {err}; is it a WAV/FLAC/OGG file?") from None
    wav = torch.from_numpy(np.ascontiguousarray(samples.T)).unsqueeze(0)
    if wav.shape[-1] == 0:
        raise ValueError(f"{name} audio {shown} holds no samples")
    if wav.shape[1] != 1:
        if not config.mono:
            raise ValueError(f"{name} audio {shown} has {wav.shape[1]} channels but the speaker model is mono; "
                             "pass --mono to average the channels")
        wav = wav.mean(dim=1, keepdim=True)
    if sr != rate:
        if not config.resample:
            raise ValueError(f"{name} audio {shown} is at {sr} Hz but the model expects {rate} Hz; resample the "
                             "files or pass --resample")
        from avxai.modalities.spectrogram import resample

        wav = resample(wav, int(sr), rate)
    duration = wav.shape[-1] / rate
    need = max(config.min_duration_s, config.n_fft / rate)
    if duration < need:
        raise ValueError(f"{name} audio {shown} is too short: {duration:.3f} s, the audit needs at least {need:.3f} s "
                         "(min_duration_s / one STFT frame)")
    if not torch.isfinite(wav).all():
        raise ValueError(f"{name} audio {shown} contains NaN or infinite samples")
    return wav


def voice_activity(waveform: Tensor, sample_rate: int, frame_s: float = 0.02, threshold_db: float = -30.0,
                   floor_margin_db: float = 6.0) -> Tensor:
    """Energy-based voice activity per non-overlapping frame of ``frame_s`` seconds.

    A frame is active when :func:`avxai.data.energy_vad` marks it (energy within ``threshold_db`` of the
    loudest frame) *and* its energy is at least ``floor_margin_db`` above the noise floor, the 5th
    percentile of the frame energies; the second rule keeps stationary noise in pauses from counting as
    speech at moderate SNRs (``floor_margin_db=0`` leaves :func:`~avxai.data.energy_vad` alone).
    Frame ``i`` covers ``[i * frame_s, (i + 1) * frame_s)``.

    Shape: ``(time,)`` or ``(1, 1, time)`` -> ``(time // frame_len,)`` bool.
    """
    from avxai.data import energy_vad

    x = waveform.reshape(-1)
    loud = energy_vad(x, sample_rate, frame_s, threshold_db)
    if floor_margin_db <= 0:
        return loud
    flen = max(int(round(frame_s * sample_rate)), 1)
    n = loud.shape[0]
    energy = 10.0 * torch.log10(x[: n * flen].double().reshape(n, flen).pow(2).mean(dim=1) + 1e-20)
    floor = torch.quantile(energy, 0.05)
    return loud & (energy > floor + floor_margin_db)


def _mask_mass(masks: Tensor, inside: Tensor) -> list[float]:
    """Fraction of each mask's mass ``(K, F, T)`` in the frames ``inside (T,)``; 0 when no frame is inside."""
    from avxai.data.mixtures import mask_to_segments
    from avxai.metrics.localisation import mass_in_segments

    out = torch.zeros(masks.shape[0], dtype=torch.float64)
    ok = masks.sum(dim=(1, 2)) > 0
    if bool(inside.any()) and bool(ok.any()):
        runs = mask_to_segments(inside, 1.0, label="in")  # runs of frame indices
        frames = torch.arange(inside.shape[0], dtype=torch.float64)
        out[ok] = mass_in_segments(masks[ok], frames, runs, grid_dims=2)
    return [float(v) for v in out]


def _wav_bytes(wave: Tensor, rate: int) -> bytes:
    """``(channels, time)`` float audio -> 16-bit PCM WAV bytes (scaled, never clipped, when it exceeds 1)."""
    import soundfile as sf

    w = wave.detach().cpu().float()
    peak = float(w.abs().max()) if w.numel() else 0.0
    if peak > 1.0:
        w = w / peak * 0.99
    buf = io.BytesIO()
    sf.write(buf, w.numpy().T, int(rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _round(values: Any, digits: int = 6) -> Any:
    if isinstance(values, (list, tuple)):
        return [_round(v, digits) for v in values]
    if values is None:
        return None
    v = float(values)
    return round(v, digits) if math.isfinite(v) else None


def run_trial(payload: TrialPayload, model, config: AuditConfig, *, media: bool = True) -> TrialOutcome:
    """Explain one trial's verification score and measure where the evidence lies.

    Never raises for a bad trial: any exception becomes a failed record (:func:`failed_outcome`).
    ``model`` is built by :meth:`ModelSpec.build`: it has ``sample_rate`` and ``embedder()`` (explained).
    """
    start = time.perf_counter(), time.process_time()
    trial = payload.trial
    if payload.error is not None:
        return failed_outcome(trial, payload.error)
    try:
        return _run_trial(payload, model, config, start, media)
    except Exception as err:  # recorded with the trial; the audit goes on
        outcome = failed_outcome(trial, err, time.perf_counter() - start[0])
        if not isinstance(err, (ValueError, TypeError, FileNotFoundError)):
            outcome.record["error"]["traceback"] = traceback.format_exc(limit=8)
        return outcome


def _run_trial(payload: TrialPayload, model, config: AuditConfig, start: tuple[float, float],
               media: bool) -> TrialOutcome:
    from avxai.hygiene import evaluation_mode
    from avxai.methods import get_method
    from avxai.engine import evaluate_masks, mask_media, top_fraction_mask
    from avxai.metrics.faithfulness import deletion_curve
    from avxai.metrics.localisation import frames_in_segments
    from avxai.modalities.spectrogram import Spectrogram
    from avxai.scorers.speaker import SpeakerCosine

    trial = payload.trial
    rate = int(model.sample_rate)
    enroll = _decode("enroll", trial.enroll, payload.enroll, rate, config)
    test = _decode("test", trial.test, payload.test, rate, config)
    embedder = model.embedder()
    with evaluation_mode(embedder):
        scorer = SpeakerCosine(embedder, enroll)
    modality = Spectrogram(test, rate, n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                           perturbation=config.perturbation)
    duration = test.shape[-1] / rate
    for name in ("target_segments", "interferer_segments"):
        late = [s for s in getattr(trial, name) if s[0] >= duration]
        if late:
            raise ValueError(f"{name} {late} start after the end of the {duration:.2f} s test utterance {trial.test}")
    method = get_method(config.method)
    explanation = method(embedder, modality, scorer, config.method_config())
    score = float(explanation.scores["unmasked"][0])
    grid = modality.grid_shape
    areas = list(config.areas)
    attribution = explanation.attribution  # (1, F, T)
    if config.method == "extremal":
        masks = explanation.masks[0].detach()  # (K, F, T)
        preserved = explanation.scores["preserved"][0].tolist()
        deleted = explanation.scores["deleted"][0].tolist()
    else:
        masks = torch.cat([top_fraction_mask(attribution, a) for a in areas])  # (K, F, T)
    times = np.asarray(explanation.coordinates["time"], dtype=np.float64)
    vad = voice_activity(test, rate, config.vad_frame_s, config.vad_threshold_db, config.vad_floor_margin_db)
    vad_len = max(int(round(config.vad_frame_s * rate)), 1)  # samples per VAD frame, as voice_activity cuts them
    vad_index = np.clip(np.floor(times * rate / vad_len).astype(np.int64), 0, vad.shape[0] - 1)
    speech = torch.as_tensor(vad.numpy()[vad_index])  # (T,) bool, per STFT frame
    only = {"speech": speech, "nonspeech": ~speech}
    extra_masks = [torch.zeros(grid, dtype=masks.dtype).index_fill_(1, m.nonzero().flatten(), 1.0)
                   for m in only.values() if bool(m.any())]
    with evaluation_mode(embedder):
        probe = [masks, 1.0 - masks] if config.method == "occlusion" else []
        stacked = torch.cat(probe + [m.unsqueeze(0) for m in extra_masks]) if (probe or extra_masks) else None
        values = (evaluate_masks(embedder, modality, scorer, stacked, config.batch_size).tolist()
                  if stacked is not None else [])
    k = len(areas)
    if config.method == "occlusion":
        preserved, deleted, values = values[:k], values[k:2 * k], values[2 * k:]
    only_scores = {}
    for name, m in only.items():
        only_scores[name] = values.pop(0) if bool(m.any()) else None
    curve = deletion_curve(embedder, modality, scorer, attribution, steps=config.curve_steps,
                           batch_size=config.batch_size, normalise="none")
    curve_scores = curve.raw[0].tolist()
    speech_mass = _mask_mass(masks, speech)
    nonspeech_fraction = float((~speech).double().mean())
    nonspeech_mass = [1.0 - m for m in speech_mass]
    excess = [m - nonspeech_fraction for m in nonspeech_mass]
    record = {
        **trial.describe(),
        "status": "ok",
        "error": None,
        "score": _round(score),
        "duration_s": round(duration, 4),
        "sample_rate": rate,
        "areas": areas,
        "display_area": config.display_area,
        "preserved": _round(preserved),
        "deleted": _round(deleted),
        "curve": {"fractions": _round(curve.fractions.tolist()), "scores": _round(curve_scores),
                  "drop": _round([score - s for s in curve_scores])},
        "speech": {
            "frames_fraction": _round(1.0 - nonspeech_fraction),
            "mass": _round(speech_mass),
            "nonspeech_mass": _round(nonspeech_mass),
            "nonspeech_excess": _round(excess),
            "score_speech_only": _round(only_scores["speech"]),
            "score_nonspeech_only": _round(only_scores["nonspeech"]),
        },
        "nonspeech_reliance": _round(float(np.mean(excess))),
    }
    for name, segs in (("target", trial.target_segments), ("interferer", trial.interferer_segments)):
        if segs:
            inside = frames_in_segments(times, [{"start_s": s, "end_s": e} for s, e in segs])
            record[name] = {"frames_fraction": _round(float(inside.double().mean())),
                            "mass": _round(_mask_mass(masks, inside))}
        else:
            record[name] = None
    files: dict[str, bytes] = {}
    if media:
        from avxai.audit.report import trial_figure

        d = areas.index(config.display_area)
        shown = masks[d].unsqueeze(0)
        rendered = mask_media(modality, {"preserved": shown, "deleted": 1.0 - shown})
        folder = f"trials/{trial.id}"
        names = {}
        for key in ("original", "preserved", "deleted"):
            _, wav, sr = rendered[key]
            names[key] = f"{folder}/{key}.wav"
            files[names[key]] = _wav_bytes(wav[0], sr)
        names["figure"] = f"{folder}/figure.png"
        files[names["figure"]] = trial_figure(
            grid=explanation.grid[0].numpy(), mask=masks[d].numpy(), times=times,
            freqs=np.asarray(explanation.coordinates[explanation.axes[0]]), mel=config.n_mels is not None,
            speech=speech.numpy(), segments=trial.segments(), record=record)
        record["files"] = names
    # timing (the only fields that differ between runs): wall seconds and CPU seconds of this process
    record["seconds"] = round(time.perf_counter() - start[0], 3)
    record["cpu_seconds"] = round(time.process_time() - start[1], 3)
    return TrialOutcome(record, files)


def run_batch(payloads: Iterable[TrialPayload], spec: ModelSpec, config: AuditConfig,
              media: bool = True) -> list[TrialOutcome]:
    """Run trials one after the other with the model built from ``spec`` (what a worker or a Ray task does)."""
    model = spec.build()
    return [run_trial(p, model, config, media=media) for p in payloads]


# ---------------------------------------------------------------------------------------------
# the resumable store
# ---------------------------------------------------------------------------------------------
def fingerprint_hash(fingerprint: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def make_fingerprint(trials_csv: "str | Path", spec: ModelSpec, config: AuditConfig, media: bool = True) -> dict:
    """What determines the per-trial results: the trial list's bytes, the model's bytes, the config."""
    return {"format_version": FORMAT_VERSION, "trials_sha256": file_digest(trials_csv),
            "model_sha256": spec.digest, "config": config.to_dict(), "media": bool(media)}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {json.dumps(b)} in the folder, {json.dumps(a)} now"]


class ResultStore:
    """``DIR/audit.json`` (arguments and their hash), ``DIR/results.jsonl`` (one record per finished trial),
    ``DIR/trials/<id>/`` (figure and audio). The driver is the only writer; an advisory lock on
    ``DIR/.lock`` keeps a second audit from writing to the same folder at the same time.
    """

    def __init__(self, directory: "str | Path", fingerprint: Mapping[str, Any]):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = None
        self._acquire_lock()
        self.fingerprint = dict(fingerprint)
        self.hash = fingerprint_hash(self.fingerprint)
        meta = self.dir / "audit.json"
        if meta.exists():
            try:
                old = json.loads(meta.read_text())
            except json.JSONDecodeError:
                raise ValueError(f"{meta} is not valid JSON; this folder was not written by avxai audit (or it was "
                                 "damaged): use another --out") from None
            if old.get("hash") != self.hash:
                diffs = _differences(self.fingerprint, old.get("arguments", {}))
                raise ValueError(
                    f"{self.dir} holds an audit run with different arguments, and results of two different runs must "
                    f"not be mixed ({'; '.join(diffs) or 'hash differs'}). Rerun with the same trial list, model and "
                    "options to continue it, or give another --out (or delete the folder) to start a new audit")
        else:
            if (self.dir / "results.jsonl").exists():
                raise ValueError(f"{self.dir} holds results.jsonl but no audit.json, so its arguments are unknown; "
                                 "give another --out")
            tmp = meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"hash": self.hash, "arguments": self.fingerprint}, indent=2, sort_keys=True))
            os.replace(tmp, meta)
        self.results = self.dir / "results.jsonl"
        self._repair_tail()

    def _acquire_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        handle = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ValueError(f"another audit is writing to {self.dir} right now; wait for it or use another --out") from None
        self._lock = handle

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _repair_tail(self) -> None:
        """Drop a last line cut off by an interruption (no newline), so the next append starts clean."""
        if not self.results.exists():
            return
        data = self.results.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.results, "r+b") as f:
                f.truncate(keep)

    def records(self) -> dict[str, dict]:
        """Finished trials: id -> the latest record (a retried trial's newer record wins)."""
        out: dict[str, dict] = {}
        if not self.results.exists():
            return out
        with open(self.results, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"{self.results}, line {number} is not valid JSON; the file was edited or damaged. "
                                     "Delete that line to rerun the trial") from None
                out[rec["id"]] = rec
        return out

    def write(self, outcome: TrialOutcome) -> None:
        """Write the trial's files, then append its record (the record is the commit point)."""
        for rel, data in outcome.files.items():
            path = self.dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        line = json.dumps(outcome.record, sort_keys=True, allow_nan=False) + "\n"
        with open(self.results, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
