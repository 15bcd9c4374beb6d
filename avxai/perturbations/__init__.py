"""Perturbations: what a masked-out region of a grid is replaced with.

A perturbation turns a representation ``x`` of shape ``(batch, channels, *grid)`` and a batch
of masks ``(n, *grid)`` (1 = keep) into ``n`` perturbed representations
``(n, channels, *grid)``; row ``i`` of the masks belongs to input ``i % batch``.

Fixed baselines (:class:`Constant`, :class:`Mean`, :class:`Noise`, :class:`Blur`, :class:`Shift`)
compute ``mask * x + (1 - mask) * baseline(x)``. Two depend on the mask: :class:`BlurPyramid`, the
blur of Fong et al. (2019), where a mask value ``m`` selects a blur of strength ``(1 - m) * sigma``,
and :class:`Freeze`, where a removed cell holds the last kept value along time (a frozen frame).
Axes are named (``"time"``, ``"freq"``, ``"height"``, ``"width"``), so the same perturbation
serves a spectrogram ``(freq, time)`` and a video ``(time, height, width)``.
"""

from __future__ import annotations

from typing import Sequence

from avxai.perturbations.base import (BaselinePerturbation, GridInfo, Perturbation, PreparedPerturbation,
                                      tile_batch)
from avxai.perturbations.baselines import Constant, Floor, Mean, Noise, Shift
from avxai.perturbations.blur import Blur, BlurPyramid, gaussian_blur_axis
from avxai.perturbations.freeze import Freeze

__all__ = ["GridInfo", "Perturbation", "PreparedPerturbation", "BaselinePerturbation", "tile_batch", "Constant",
           "Mean", "Noise", "Floor", "Shift", "Blur", "BlurPyramid", "gaussian_blur_axis", "Freeze",
           "parse_perturbation", "PERTURBATION_NAMES"]


def parse_perturbation(spec: "str | Perturbation") -> Perturbation:
    """Build a perturbation from a short name, as used in configs and on the command line.

    ``zero``, ``const:V``, ``mean``, ``mean-time`` (mean over time: long-term spectrum / mean face),
    ``noise[:SNR_DB]``, ``floor[:QUANTILE]`` / ``floor-noise[:QUANTILE]`` (the input's own noise floor: its
    quietest frames, see :class:`Floor`), ``time-blur[:SIGMA]``, ``freq-blur[:SIGMA]``, ``spatial-blur[:SIGMA]``,
    ``freeze`` (hold the previous frame), ``pyramid-time[:SIGMA]``, ``pyramid-freq[:SIGMA]``,
    ``pyramid-tf[:SIGMA]``, ``pyramid-spatial[:SIGMA]``. Sigmas are in grid cells.
    """
    if isinstance(spec, Perturbation):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a perturbation is a Perturbation or a name such as 'zero', got {type(spec).__name__}")
    name, _, arg = spec.partition(":")
    try:
        value = float(arg) if arg else None
    except ValueError:
        raise ValueError(f"bad perturbation {spec!r}: the part after ':' must be a number") from None

    def v(default: float) -> float:
        return default if value is None else value

    table = {
        "zero": lambda: Constant(0.0),
        "const": lambda: Constant(v(0.0)),
        "mean": lambda: Mean(),
        "mean-time": lambda: Mean(("time",)),
        "noise": lambda: Noise(snr_db=v(0.0)),
        "floor": lambda: Floor(quantile=v(0.1)),
        "floor-noise": lambda: Floor(quantile=v(0.1), noise=True),
        "time-blur": lambda: Blur({"time": v(4.0)}),
        "freq-blur": lambda: Blur({"freq": v(4.0)}),
        "spatial-blur": lambda: Blur({"height": v(6.0), "width": v(6.0)}),
        "freeze": lambda: Freeze("time"),
        "pyramid-time": lambda: BlurPyramid({"time": v(8.0)}),
        "pyramid-freq": lambda: BlurPyramid({"freq": v(8.0)}),
        "pyramid-tf": lambda: BlurPyramid({"time": v(8.0), "freq": v(8.0)}),
        "pyramid-spatial": lambda: BlurPyramid({"height": v(10.0), "width": v(10.0)}),
    }
    if name not in table:
        raise ValueError(f"unknown perturbation {spec!r}; choose one of {', '.join(sorted(table))}")
    return table[name]()


PERTURBATION_NAMES: Sequence[str] = (
    "zero", "const", "mean", "mean-time", "noise", "floor", "floor-noise", "time-blur", "freq-blur", "spatial-blur", "freeze",
    "pyramid-time", "pyramid-freq", "pyramid-tf", "pyramid-spatial",
)
