"""One place for the look of every figure: print widths, font sizes, colour maps, colours, saving.

Figures are made at the width they print: one column of a two-column paper (:data:`COLUMN_WIDTH`, 3.4 in)
or the page (:data:`PAGE_WIDTH`, 7.0 in), with no text below :data:`MIN_FONT_PT` (7 pt) at that size.
Colours are colour-blind safe: lines and methods take the Okabe-Ito palette; every signed map (an
attribution: the score drop when a cell is removed) takes one diverging map with zero white
(:data:`SIGNED_CMAP`), in audio and video panels alike; masks in [0, 1] take viridis; spectrograms magma.

>>> with paper_style():
...     fig = explanation.plot()
...     save_figure(fig, "figures/extremal_aba")   # figures/extremal_aba.pdf (vector) and .png
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import Normalize, TwoSlopeNorm  # noqa: E402

#: figure widths in inches (a two-column paper): every figure is made at one of them
COLUMN_WIDTH = 3.4
PAGE_WIDTH = 7.0
WIDTHS = (COLUMN_WIDTH, PAGE_WIDTH)
#: the smallest text size at print size, in points
MIN_FONT_PT = 7.0

#: Okabe & Ito (2008) colour-blind-safe palette: black, orange, sky blue, bluish green, yellow, blue,
#: vermillion, reddish purple
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

#: the one signed colour map: blue = the score rises when the cell is removed, white = 0, red = it drops
SIGNED_CMAP = "RdBu_r"

#: colour map per kind of quantity, used by every figure
CMAPS = {
    "magnitude": "magma",        # spectrogram in dB
    "attribution": SIGNED_CMAP,  # signed evidence: score drop when removed, centred on 0
    "heat": SIGNED_CMAP,         # kept for callers of the old name: the same signed map
    "mask": "viridis",           # masks in [0, 1], 1 = kept
}

#: a fixed Okabe-Ito colour per method, so a method looks the same in every curve, bar and table
METHOD_COLOURS = {
    "extremal": OKABE_ITO[3],              # bluish green
    "occlusion": OKABE_ITO[6],             # vermillion
    "saliency": OKABE_ITO[5],              # blue
    "smoothgrad": OKABE_ITO[7],            # reddish purple
    "integrated-gradients": OKABE_ITO[1],  # orange
    "gradcam": OKABE_ITO[2],               # sky blue
    "pca-rgb": OKABE_ITO[4],               # yellow
    "random": OKABE_ITO[0],                # black (drawn dashed)
}

#: the two labelled speakers of A-B-A inputs (turn labels and boundary lines, never shading over data)
SEGMENT_COLOURS = {"A": OKABE_ITO[5], "B": OKABE_ITO[6]}

#: matplotlib settings of every figure: embedded TrueType fonts (editable text in PDF), 7-8 pt text
PAPER_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "mathtext.fontset": "dejavusans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 8,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=list(OKABE_ITO[1:]) + [OKABE_ITO[0]]),
    "image.cmap": CMAPS["mask"],
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": 300,
    "savefig.bbox": "standard",  # the saved file is the figure's own size: 3.4 or 7.0 in wide
    "figure.dpi": 100,
    "figure.constrained_layout.h_pad": 0.02,
    "figure.constrained_layout.w_pad": 0.02,
}


def method_colour(name: str) -> str:
    """The colour of method ``name`` (dark grey for a method without one)."""
    return METHOD_COLOURS.get(name, "#555555")


@contextlib.contextmanager
def paper_style(**overrides) -> Iterator[None]:
    """Apply :data:`PAPER_RC` (plus ``overrides``) for the duration of the block; restored afterwards."""
    with matplotlib.rc_context({**PAPER_RC, **overrides}):
        yield


def styled(plot: Callable) -> Callable:
    """Decorator: draw ``plot`` under :func:`paper_style`, so text sizes and colours are the print ones."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with paper_style():
            return plot(*args, **kwargs)

    return wrapper


def new_figure(width: float = PAGE_WIDTH, height: float = 2.4):
    """An empty figure ``width`` (3.4 or 7.0) x ``height`` inches with constrained layout."""
    if width not in WIDTHS:
        raise ValueError(f"figure width must be {COLUMN_WIDTH} (one column) or {PAGE_WIDTH} in (the page), got {width}")
    return plt.figure(figsize=(width, height), layout="constrained")


def signed_norm(values: np.ndarray) -> TwoSlopeNorm:
    """A colour norm of :data:`SIGNED_CMAP` centred on 0, symmetric: zero is white whatever the values."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    bound = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-12)
    return TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)


def mask_norm() -> Normalize:
    """The colour norm of masks: 0 (removed) to 1 (kept)."""
    return Normalize(vmin=0.0, vmax=1.0)


def legend_below(ax, handles=None, labels=None, ncol: int | None = None, **kwargs):
    """A legend under the axes, off the data (one row when it fits)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    ncol = ncol or min(len(handles), 4) or 1
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=ncol, frameon=False,
                     borderaxespad=0.0, handlelength=1.4, columnspacing=1.0, **kwargs)


def legend_right(ax, handles=None, labels=None, **kwargs):
    """A legend right of the axes, off the data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    return ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
                     borderaxespad=0.0, handlelength=1.4, **kwargs)


def text_sizes(fig) -> list[tuple[float, str]]:
    """``(size in pt, text)`` of every visible, non-empty text artist of ``fig`` (drawn first, so tick labels exist)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    found = []
    texts = list(fig.findobj(Text))
    for ax in fig.get_axes():  # table cells hold their text outside the artist tree
        for table in ax.tables:
            texts += [cell.get_text() for cell in table.get_celld().values()]
    for artist in texts:
        if artist.get_visible() and artist.get_text().strip():
            found.append((float(artist.get_fontsize()), artist.get_text()))
    return found


def check_print(fig) -> None:
    """``ValueError`` unless ``fig`` is 3.4 or 7.0 in wide and no text is below :data:`MIN_FONT_PT`."""
    width = round(float(fig.get_size_inches()[0]), 3)
    if width not in WIDTHS:
        raise ValueError(f"figure is {width} in wide; print widths are {COLUMN_WIDTH} and {PAGE_WIDTH} in")
    small = [(s, t) for s, t in text_sizes(fig) if s < MIN_FONT_PT - 1e-6]
    if small:
        raise ValueError(f"{len(small)} texts below {MIN_FONT_PT} pt, e.g. {small[:3]}")


def save_figure(fig, stem: "str | Path", formats: Sequence[str] = ("pdf", "png"), *, close: bool = True,
                dpi: int = 300) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format (PDF/SVG vector, PNG at ``dpi``) at its own size;
    returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with paper_style():
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            fig.savefig(path, format=fmt, dpi=dpi)
            paths.append(path)
    if close:
        plt.close(fig)
    return paths
