"""One place for the look of publication figures: fonts, sizes, colour maps, method colours, saving.

>>> with paper_style():
...     fig = explanation.plot()
...     save_figure(fig, "figures/extremal_aba")   # figures/extremal_aba.pdf and .png
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

#: figure widths in inches (a two-column paper)
COLUMN_WIDTH = 3.4
PAGE_WIDTH = 7.0

#: colour map per kind of quantity, used by every paper figure
CMAPS = {
    "magnitude": "magma",      # spectrogram in dB
    "attribution": "RdBu_r",   # signed evidence, centred on 0 (red = for the result)
    "heat": "inferno",         # non-negative evidence (masks, saliency, CAM) over a grey image
    "mask": "viridis",         # masks in [0, 1]
}

#: a fixed colour per method, so a method looks the same in every curve, bar and table
METHOD_COLOURS = {
    "extremal": "#1b9e77",
    "occlusion": "#d95f02",
    "saliency": "#7570b3",
    "smoothgrad": "#e7298a",
    "integrated-gradients": "#66a61e",
    "gradcam": "#e6ab02",
    "random": "#777777",
}

#: matplotlib settings of paper figures: embedded TrueType fonts (editable text in PDF), small sizes
PAPER_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "mathtext.fontset": "dejavusans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": CMAPS["heat"],
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "figure.dpi": 100,
}


def method_colour(name: str) -> str:
    """The colour of method ``name`` (grey for a method without one)."""
    return METHOD_COLOURS.get(name, "#444444")


@contextlib.contextmanager
def paper_style(**overrides) -> Iterator[None]:
    """Apply :data:`PAPER_RC` (plus ``overrides``) for the duration of the block; restored afterwards."""
    with matplotlib.rc_context({**PAPER_RC, **overrides}):
        yield


def save_figure(fig, stem: "str | Path", formats: Sequence[str] = ("pdf", "png"), *, close: bool = True) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format (PDF/SVG vector, PNG at 300 dpi); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt)
        paths.append(path)
    if close:
        plt.close(fig)
    return paths
