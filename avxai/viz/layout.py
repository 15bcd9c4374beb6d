"""Which figure an explanation gets, decided by its grid's axis names and units and by what it holds.

Never by the method's name, and never by the number of axes alone: a ``(time, height, width)`` grid is
video, a 3-D grid of planes such as a mel + delta grid ``(delta, mel, time)`` is drawn plane by plane.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["IMAGE_AXES", "SPECTRAL_AXES", "is_spectral", "is_video", "is_composite", "grid_layout", "layout_of"]

#: the last two axes of an image grid (face crops, frames)
IMAGE_AXES = ("height", "width")
#: axis names of a frequency axis (its unit is Hz)
SPECTRAL_AXES = ("freq", "mel")


def is_spectral(axis: str, units: "dict[str, str] | None" = None) -> bool:
    """Whether ``axis`` is a frequency axis: named ``freq`` or ``mel``, or measured in Hz."""
    return axis in SPECTRAL_AXES or (units or {}).get(axis) == "Hz"


def is_video(axes: Sequence[str]) -> bool:
    """Whether a grid with these axes is a video: ``(time, height, width)``."""
    return len(axes) == 3 and tuple(axes[1:]) == IMAGE_AXES


def is_composite(explanation) -> bool:
    """Whether the explanation is over a composite input (its modality metadata names parts)."""
    return "part_names" in explanation.metadata.get("modality", {})


def grid_layout(axes: Sequence[str]) -> str:
    """How a grid is drawn: ``"curve"`` (one axis), ``"plane"`` (two axes, e.g. frequency x time),
    ``"frames"`` (``(time, height, width)`` images), ``"planes"`` (three axes that are not images: one plane
    per index of the first axis)."""
    if len(axes) == 1:
        return "curve"
    if len(axes) == 2:
        return "plane"
    if is_video(axes):
        return "frames"
    if len(axes) == 3:
        return "planes"
    raise ValueError(f"cannot draw a grid with axes {tuple(axes)}; expected 1 to 3 axes")


def layout_of(explanation) -> str:
    """The figure of an explanation: ``"pca-rgb"`` when it holds PCA-RGB images (``arrays["rgb_*"]``),
    ``"video"`` for a composite input or a ``(time, height, width)`` grid, ``"masks"`` when it holds one mask
    per area, else ``"attribution"``."""
    if any(name.startswith("rgb_") for name in explanation.arrays):
        return "pca-rgb"
    if is_composite(explanation) or is_video(explanation.axes):
        return "video"
    if explanation.masks is not None:
        return "masks"
    return "attribution"
