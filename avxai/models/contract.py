"""What avxai may ask of a model, and one accessor per question.

A model is any ``torch.nn.Module``. It must state the sample rate of the audio it takes (``sample_rate``, Hz);
everything else is optional and read only by the parts of avxai that need it:

===================  =============================  =================================================
attribute            type                           read by
===================  =============================  =================================================
``sample_rate``      positive int, Hz (required)    every audio method: audio at another rate is refused
``fps``              positive float                 audio-visual tasks: video at another rate is refused
``n_fft``,           positive ints, samples (both   spectrogram defaults of the enhancement tasks
``hop_length``       or neither)
``crop_size``        positive int, pixels           face tracking (square face crops of this side)
``num_sources``      positive int                   separation tasks (which ``--source`` exists)
``embedder()``       returns an ``nn.Module``       verification scorers (cosine of embeddings)
``pca_layers``       dict stream name -> layer      :mod:`avxai.methods.pca_rgb` (dotted module paths)
``frame_hop_s``      positive float, seconds        frame-level scorers (a time region -> output frames)
===================  =============================  =================================================

Read them with the accessors below (``sample_rate_of(model)`` etc.), never with ``getattr``: each one checks the
type and returns ``None`` when the model does not state the part, or raises one clear error with
``required=True``.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Mapping, Protocol, runtime_checkable

from torch import nn

from avxai.checks import check_sample_rate

__all__ = ["ModelContract", "sample_rate_of", "stft_of", "fps_of", "crop_size_of", "num_sources_of", "embedder_of",
           "pca_layers_of", "frame_hop_of"]


@runtime_checkable
class ModelContract(Protocol):
    """A model avxai can explain: a callable module that states its audio ``sample_rate`` (Hz).

    Optional parts (see the module docstring): ``fps``, ``n_fft`` + ``hop_length``, ``crop_size``,
    ``num_sources``, ``embedder()``, ``pca_layers``.
    """

    sample_rate: int

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def _name(model: Any) -> str:
    return type(model).__name__


def _stated(model: Any, attr: str, required: bool, fix: str, what: str | None = None) -> Any:
    """``model.<attr>``, or ``None`` when absent; absent and ``required``: ``ValueError`` with ``fix``."""
    value = getattr(model, attr, None)
    if value is None and required:
        raise ValueError(f"{_name(model)} does not state its {what or attr}; {fix}")
    return value


def _positive_int(model: Any, attr: str, required: bool, fix: str) -> int | None:
    value = _stated(model, attr, required, fix)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value).is_integer() or value <= 0:
        raise TypeError(f"{_name(model)}.{attr} must be a positive whole number, got {value!r}")
    return int(value)


def sample_rate_of(model: Any, *, required: bool = False) -> int | None:
    """The sample rate (Hz) of the audio ``model`` takes, or ``None`` when it states none."""
    return _positive_int(model, "sample_rate", required,
                         "set model.sample_rate (Hz) or wrap it with avxai.models.with_sample_rate(model, rate)")


def agreed_sample_rate(stated: Any, given: Any, *, who: str, missing: str, stated_as: str = "sample_rate={} Hz") -> int:
    """The one sample rate (Hz) of a model that may state its own (``stated``) and may be given one (``given``).

    Neither: ``ValueError`` "``who`` does not state its sample rate; ``missing``". Both, and different:
    ``ValueError`` (a model works at the rate it was trained at: resample the audio, never relabel the model).
    A rate given as text of digits (a command-line argument) is read as an int.
    """
    if isinstance(given, str) and given.strip().isdigit():
        given = int(given)
    if given is None:
        if stated is None:
            raise ValueError(f"{who} does not state its sample rate; {missing}")
        return check_sample_rate(stated, "sample_rate")
    given = check_sample_rate(given, "sample_rate")
    if stated is not None and stated != given:
        raise ValueError(f"{who} says {stated_as.format(stated)} but sample_rate={given} was given; resample the "
                         "audio instead of relabelling the model")
    return given


def fps_of(model: Any, *, required: bool = False) -> float | None:
    """The frames per second of the video ``model`` takes, or ``None``."""
    value = _stated(model, "fps", required, "set model.fps (frames per second)", "video frame rate (fps)")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise TypeError(f"{_name(model)}.fps must be a positive number of frames per second, got {value!r}")
    return float(value)


def stft_of(model: Any, *, required: bool = False) -> tuple[int, int] | None:
    """``(n_fft, hop_length)`` in samples of the STFT ``model`` computes inside, or ``None``.

    A model states both attributes or neither; only one of them is an error.
    """
    fix = "set both model.n_fft and model.hop_length (samples)"
    n_fft = _positive_int(model, "n_fft", False, fix)
    hop = _positive_int(model, "hop_length", False, fix)
    if n_fft is None and hop is None:
        _stated(model, "n_fft", required, fix + ", or pass n_fft and hop_length yourself", "STFT (n_fft, hop_length)")
        return None
    if n_fft is None or hop is None:
        raise ValueError(f"{_name(model)} states {'n_fft' if hop is None else 'hop_length'} but not "
                         f"{'hop_length' if hop is None else 'n_fft'}; {fix}")
    return n_fft, hop


def crop_size_of(model: Any, *, required: bool = False) -> int | None:
    """The side in pixels of the square face crops ``model`` takes, or ``None``."""
    return _positive_int(model, "crop_size", required, "set model.crop_size (pixels)")


def num_sources_of(model: Any, *, required: bool = False) -> int | None:
    """How many sources a separation ``model`` returns, or ``None``."""
    return _positive_int(model, "num_sources", required, "set model.num_sources")


def embedder_of(model: Any, *, required: bool = False) -> nn.Module | None:
    """``model.embedder()``: a module mapping the model's input to embeddings ``(batch, dim)``; or ``None``."""
    method = _stated(model, "embedder", required, "give it an embedder() method returning a module that maps its "
                                                  "input to embeddings (batch, dim), as SpeakerNet does")
    if method is None:
        return None
    if not callable(method):
        raise TypeError(f"{_name(model)}.embedder must be a method returning an nn.Module, got {type(method).__name__}")
    embedder = method()
    if not isinstance(embedder, nn.Module):
        raise TypeError(f"{_name(model)}.embedder() must return a torch.nn.Module, got {type(embedder).__name__}")
    return embedder


def pca_layers_of(model: Any, *, required: bool = False) -> dict[str, str] | None:
    """``model.pca_layers``: stream name (e.g. ``"video"``, ``"audio"``) -> dotted layer path; or ``None``."""
    layers = _stated(model, "pca_layers", required, "pass the layer to embed, or set model.pca_layers = "
                                                    "{'stream': 'dotted.module.path'}")
    if layers is None:
        return None
    if not isinstance(layers, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in layers.items()):
        raise TypeError(f"{_name(model)}.pca_layers must map stream names to dotted layer paths (str -> str), "
                        f"got {layers!r}")
    return dict(layers)


def frame_hop_of(model: Any, *, required: bool = False) -> float | None:
    """Seconds between two output frames of a model returning a frame sequence ``(batch, frames, ...)``
    (``model.frame_hop_s``, e.g. a chunked VAD's ``chunk / sample_rate``), or ``None``."""
    value = _stated(model, "frame_hop_s", required, "set model.frame_hop_s (seconds between output frames)",
                    "frame hop (frame_hop_s)")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise TypeError(f"{_name(model)}.frame_hop_s must be a positive number of seconds, got {value!r}")
    return float(value)
