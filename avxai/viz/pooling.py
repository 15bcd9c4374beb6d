"""Maps wider than a figure can show, pooled along time to the figure's pixel width before they are drawn.

A page-wide figure (:data:`~avxai.viz.style.PAGE_WIDTH`, 7 in) saved at the house resolution (300 dpi) is at most
:data:`MAX_COLUMNS` pixels wide; a 10-minute spectrogram has 75,001 frames. Drawing every frame costs the image
renderer several copies of the whole map in float64 (about 0.6 GB for 257 x 75,001 cells) and shows no more: the
renderer keeps one column in about 36 anyway, and with nearest-neighbour resampling which one is chance (a
strong, short event can vanish). So a plane wider than :data:`MAX_COLUMNS` is pooled over groups of ``k``
consecutive columns first, ``k = ceil(columns / MAX_COLUMNS)``, with a rule per kind of map, stated here:

* ``"extreme"`` (signed attributions): the value of largest magnitude in the group, with its sign, so the map's
  largest and smallest values are drawn, at their group, and its colour scale is unchanged;
* ``"max"`` (magnitudes and levels in dB): the loudest cell of the group (dB is monotonic, so pooling the
  magnitude and converting afterwards gives the same picture as the other way round);
* ``"mean"`` (masks and other values): the mean of the group (a mask column shows the fraction kept).

Planes at most :data:`MAX_COLUMNS` wide are drawn as they are. Saved arrays always keep the full resolution.

Images (video frames in a strip of eight, a 720p frame shown 0.75 in wide) are area-averaged over ``k x k`` pixel
blocks to about the pixels they take at 300 dpi (:func:`pool_image`): the renderer's float64 RGBA copies of a full
frame and of its heat overlay are about 37 MB each at 720p.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_COLUMNS", "POOLING", "pool_factor", "pool_columns", "pool_image"]

#: the widest image a figure draws, in columns: the page width (7 in) at the house's saving resolution (300 dpi)
MAX_COLUMNS = 2100

#: how each kind of plane (:func:`avxai.viz.axes.show_plane`) is pooled
POOLING = {"signed": "extreme", "db": "max", "magnitude": "max", "mask": "mean", "value": "mean"}


def pool_factor(columns: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """``(k, groups)``: columns per group and the number of groups for a plane ``columns`` wide (``(1, columns)``
    when it fits)."""
    if columns <= max_columns:
        return 1, columns
    k = math.ceil(columns / max_columns)
    return k, math.ceil(columns / k)


def pool_columns(values: np.ndarray, how: str, max_columns: int = MAX_COLUMNS) -> np.ndarray:
    """Pool the last axis of ``values`` to at most ``max_columns`` groups of ``k`` consecutive columns (the last
    group may be shorter) by ``how``: ``"extreme"``, ``"max"`` or ``"mean"`` (see the module docstring).
    Returns ``values`` itself when it is not wider than ``max_columns``. No copy of the whole input is made.

    Shape: ``(..., columns)`` -> ``(..., groups)``, ``groups = ceil(columns / k)``.
    """
    if how not in ("extreme", "max", "mean"):
        raise ValueError(f"unknown pooling {how!r}; use 'extreme', 'max' or 'mean'")
    values = np.asarray(values)
    columns = values.shape[-1]
    k, groups = pool_factor(columns, max_columns)
    if k == 1:
        return values
    full = (columns // k) * k
    pieces = [values[..., :full].reshape(*values.shape[:-1], columns // k, k)]
    if full < columns:
        pieces.append(values[..., full:][..., None, :])
    return np.concatenate([_reduce(p, how) for p in pieces], axis=-1)


def _reduce(groups: np.ndarray, how: str) -> np.ndarray:
    """``(..., groups, k)`` -> ``(..., groups)``."""
    if how == "mean":
        return groups.mean(axis=-1, dtype=np.float64).astype(groups.dtype, copy=False)
    high = groups.max(axis=-1)
    if how == "max":
        return high
    low = groups.min(axis=-1)
    return np.where(high >= -low, high, low)  # the signed value of largest magnitude (ties: the positive one)


def pool_image(image: np.ndarray, k: int) -> np.ndarray:
    """Mean over ``k x k`` pixel blocks of an image ``(H, W, ...)`` (edges repeated to whole blocks); ``image``
    itself for ``k <= 1``. The pooled image covers ``(ceil(H / k) * k, ceil(W / k) * k)`` pixels of the original.

    Shape: ``(H, W, *rest)`` -> ``(ceil(H / k), ceil(W / k), *rest)``, float (uint8 images: float32).
    """
    if k <= 1:
        return image
    image = np.asarray(image)
    h, w = image.shape[:2]
    hp, wp = -(-h // k), -(-w // k)
    pad = [(0, hp * k - h), (0, wp * k - w)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge") if any(p[1] for p in pad[:2]) else image
    dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float32
    blocks = padded.reshape(hp, k, wp, k, *image.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(dtype, copy=False)
