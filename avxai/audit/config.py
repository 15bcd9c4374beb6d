"""What an audit computes per trial: :class:`AuditConfig` (hashed into the output folder) and the method's config.

The audit explains with any registered method (``avxai.methods.METHODS``) that returns masks or an
attribution. The method's frozen config is built by one rule, never by the method's name:

1. the method's own defaults;
2. the audit's defaults for that method (:data:`METHOD_DEFAULTS`, one row per method that needs them);
3. the audit's fields that the method's config also has, by field name (:data:`SHARED_FIELDS`: the mask
   ``areas``, the ``media_area`` drawn in the report, the ``batch_size``; ``progress`` is off);
4. ``method_options``, the fields the caller set (``--set FIELD=VALUE``, ``--window``, ``--iterations``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from avxai.config import build_config
from avxai.explanation import to_jsonable
from avxai.methods import get_method
from avxai.perturbations import parse_perturbation

__all__ = ["AuditConfig", "METHOD_DEFAULTS", "SHARED_FIELDS", "FORMAT_VERSION", "FORMAT_CHANGES", "check_window",
           "check_stft"]

#: version of the records in ``results.jsonl``; a folder written with another version is not continued (one line
#: says so and names the fix). 3: the records hold ``speaker`` and the per-trial ``criteria`` of the report's
#: flags, and each trial's folder its enrollment audio and ``arrays.npz`` (spectrogram, masks, attribution).
FORMAT_VERSION = 3

#: what changed in each format, for the error line that refuses an older folder
FORMAT_CHANGES = {3: "records gained the enrolled speaker and the per-trial flag criteria, trial folders the "
                     "enrollment audio and the arrays"}

#: the audit's defaults for a method's config, per method (fields of that config); a method not listed runs with
#: its config's defaults. Occlusion: windows of 32 bins x 20 frames without overlap, one forward pass per window
#: position, cheap enough for thousands of trials (set ``window`` and ``stride`` together to change it).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "occlusion": {"window": (32, 20), "stride": (32, 20)},
}

#: fields of a method's config that the audit sets when the config has them: its ``areas``, its ``display_area``,
#: its ``batch_size``, and no progress bar
SHARED_FIELDS = ("areas", "media_area", "batch_size", "progress")


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


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines an audit's per-trial results (hashed into the output folder).

    method : any registered method name (``"occlusion"``, ``"extremal"``, ``"saliency"``, ``"gradcam"``, ...).
    method_options : fields of the method's config as ``((name, value), ...)`` or a mapping (e.g.
        ``{"iterations": 100}``, ``{"window": (64, 20), "stride": (64, 20)}``); see the module docstring for
        what the method gets when a field is not set here.
    areas : mask areas (fractions of the grid) for the preserved / deleted scores and the mask statistics; a
        method that returns masks must return them at these areas (its config gets them when it has
        ``areas``), a method that returns an attribution gives the masks of its top-``area`` cells.
    media_area : the area whose mask is drawn and played in the report; ``None``: the middle area.
    n_fft, hop_length, n_mels : the spectrogram the explanation lives on (samples; mel bands or ``None``);
        ``None`` STFT values follow :func:`avxai.tasks.audio.stft_for`, the rule ``avxai explain`` uses (the
        model's own STFT, else about 32 ms with a quarter hop: 512 / 128 at 16 kHz).
    perturbation : what removed cells become (``"zero"``, ``"noise:10"``, ...).
    resample, mono : resample audio to the model's rate / average channels; otherwise a mismatch fails.
    min_duration_s : shorter test or enrollment utterances fail with a clear error.
    vad_frame_s, vad_threshold_db, vad_floor_margin_db : voice activity (see :func:`avxai.audit.speech.voice_activity`).
    curve_steps : steps of the deletion curve.
    batch_size : perturbed inputs per forward pass.
    """

    method: str = "occlusion"
    method_options: tuple[tuple[str, Any], ...] = ()
    areas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    media_area: float | None = None
    n_fft: int | None = None
    hop_length: int | None = None
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
        get_method(self.method)  # an unknown name lists the registered methods
        object.__setattr__(self, "areas", _fraction_tuple(self.areas, "areas"))
        if self.media_area is not None and float(self.media_area) not in self.areas:
            raise ValueError(f"media_area {self.media_area} is not one of the areas {self.areas}")
        opts = self.method_options.items() if isinstance(self.method_options, Mapping) else self.method_options
        object.__setattr__(self, "method_options", tuple(sorted((str(k), _freeze(v)) for k, v in opts)))
        for name in ("n_fft", "hop_length", "n_mels", "curve_steps", "batch_size"):
            v = getattr(self, name)
            if v is None and name in ("n_fft", "hop_length", "n_mels"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int{' or None' if name.startswith(('n_', 'hop')) else ''}, "
                                 f"got {v!r}")
        if not self.min_duration_s >= 0:
            raise ValueError(f"min_duration_s must be >= 0 seconds, got {self.min_duration_s}")
        if not self.vad_frame_s > 0:
            raise ValueError(f"vad_frame_s must be > 0 seconds, got {self.vad_frame_s}")
        if not self.vad_threshold_db < 0:
            raise ValueError(f"vad_threshold_db must be negative (dB below the loudest frame), got {self.vad_threshold_db}")
        if not self.vad_floor_margin_db >= 0:
            raise ValueError(f"vad_floor_margin_db must be >= 0 dB, got {self.vad_floor_margin_db}")
        parse_perturbation(self.perturbation)
        self.method_config()  # validates the method options now, not in the middle of the audit
        if self.n_fft is not None:
            check_stft(self, self.n_fft, self.hop_length)

    @property
    def display_area(self) -> float:
        return float(self.media_area) if self.media_area is not None else self.areas[len(self.areas) // 2]

    def method_config(self):
        """The method's frozen config (the four layers of the module docstring), through the config loader."""
        cls = get_method(self.method).config_class
        names = {f.name for f in fields(cls)}
        shared = dict(zip(SHARED_FIELDS, (self.areas, self.display_area, self.batch_size, False)))
        values: dict[str, Any] = dict(METHOD_DEFAULTS.get(self.method, {}))
        values.update({k: v for k, v in shared.items() if k in names})
        for key, value in self.method_options:
            if key in ("areas", "media_area"):
                raise ValueError(f"set {key} on the audit (--areas, --media-area), not as a method option")
            values[key] = value
        return build_config(cls, values=values)

    def to_dict(self) -> dict:
        """JSON types, hashed into the output folder (``build_config(AuditConfig, values=...)`` reads it back, with
        ``method_options`` as ``(name, value)`` pairs)."""
        d = {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}
        d["method_options"] = {k: to_jsonable(v) for k, v in self.method_options}
        return d


def check_stft(config: AuditConfig, n_fft: int, hop_length: int | None) -> None:
    """Raise, before any trial runs, when the STFT cannot work: ``n_fft < 8``, a hop outside ``1..n_fft``, more
    mel bands than frequency bins, or a method window taller than the spectrogram (:func:`check_window`).
    ``hop_length`` ``None``: not known yet (the model's or ``n_fft / 4`` will be used)."""
    if n_fft < 8:
        raise ValueError(f"n_fft {n_fft} is too small: the STFT needs n_fft >= 8 samples (--n-fft)")
    if hop_length is not None and not 1 <= hop_length <= n_fft:
        raise ValueError(f"hop_length {hop_length} is larger than n_fft {n_fft}: frames would skip samples; give "
                         f"--hop-length of at most {n_fft} (e.g. {max(1, n_fft // 4)}) or a larger --n-fft")
    bins = n_fft // 2 + 1
    if config.n_mels is not None and config.n_mels > bins:
        raise ValueError(f"n_mels {config.n_mels} is more than the {bins} frequency bins of a {n_fft}-point STFT "
                         f"(empty mel bands); give --n-mels of at most {bins} or a larger --n-fft")
    check_window(config, n_fft)


def check_window(config: AuditConfig, n_fft: int) -> None:
    """Raise when the method's window (a field ``window`` of two cells, if it has one) is taller than the
    spectrogram of an ``n_fft``-point STFT (or than its mel bands)."""
    window = getattr(config.method_config(), "window", None)
    bins = config.n_mels or n_fft // 2 + 1
    if isinstance(window, tuple) and len(window) == 2 and window[0] > bins:
        raise ValueError(f"the {config.method} window {window} is taller than the spectrogram's {bins} "
                         f"{'mel bands' if config.n_mels else 'frequency bins'}; use a window of at most {bins}")
