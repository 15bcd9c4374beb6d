"""Publication figures from SAVED explanations: one command, a folder of PDF (vector) and PNG files.

Nothing is recomputed: every figure is drawn from ``Explanation.load(dir)`` folders (found recursively under
the given roots) and from a method-benchmark output folder (``results.csv``, ``curves.json``), so a figure
can be restyled and redrawn in seconds. Fonts, sizes and colour maps come from :mod:`avxai.viz.style`.
This script finds the saved material and picks the figures; each kind is drawn by its module in
``figure_kinds/`` (``extremal``, ``time_frequency``, ``face``, ``pca_rgb``, ``benchmark``).

Figures (each as ``<name>.pdf`` and ``<name>.png``):

``extremal_<tag>[_<i>]``  extremal perturbation: the method's own per-area panel per input (``plot_explanation``)
``area_growth_<tag>``     the preserved score against the kept area (extremal): dB scores as preserved - unmasked,
                          positive bounded scores as preserved / unmasked; once per explanation (not per part)
``aba_<tag>``             spectrogram + one attribution map per explained speaker, segment boundaries drawn
``aba_methods``           time profiles of every method on the A-B-A task (benchmark explanations)
``tf_<tag>``              spectrogram + one attribution map per input, for (freq|mel, time) explanations without
                          segments (enhancement, separation)
``face_<tag>``            heat-map strips over face frames (3-D ``(time, height, width)`` explanations)
``pca_rgb_<tag>``         PCA-to-RGB images (explanations whose method name contains ``pca``)
``benchmark_table``       the method-benchmark table
``curves_<task>``         deletion / insertion curves per method (``avxai.viz.curves``)

Usage::

    python recipes/paper_figures/make_figures.py --benchmark avxai-out/method_benchmark --out avxai-out/figures
    python recipes/paper_figures/make_figures.py --explanations avxai-out/aba avxai-out/face --out avxai-out/figures
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:  # the figure kinds live beside this script (recipes are not a package)
    sys.path.insert(0, str(HERE))

from figure_kinds.benchmark import figure_benchmark_table, read_benchmark
from figure_kinds.extremal import figure_area_growth, figure_method_panel
from figure_kinds.face import figure_face_strip
from figure_kinds.pca_rgb import figure_pca_rgb, has_rgb
from figure_kinds.time_frequency import figure_aba, figure_aba_methods

from avxai.explanation import Explanation, split_explanation
from avxai.viz.curves import plot_faithfulness_curves
from avxai.viz.style import paper_style, save_figure


# -- finding saved explanations ------------------------------------------------------------------------------
def find_explanations(roots: list[Path]) -> dict[str, Path]:
    """``tag -> folder`` of every saved explanation under ``roots`` (tag = the folder path, made file-safe)."""
    found: dict[str, Path] = {}
    for root in roots:
        if not root.exists():
            raise ValueError(f"{root} does not exist; pass folders that hold saved explanations")
        for doc in sorted(root.rglob("explanation.json")):
            folder = doc.parent
            rel = folder.relative_to(root) if folder != root else Path(root.name)
            tag = re.sub(r"[^A-Za-z0-9]+", "_", str(rel)).strip("_") or "explanation"
            while tag in found:
                tag += "_"
            found[tag] = folder
    return found


def split_parts(expl: Explanation) -> dict[str, Explanation]:
    """An audio-visual explanation cut into its parts (``{"audio": ..., "video": ...}``); others as they are."""
    meta = expl.metadata.get("modality")
    if isinstance(meta, dict) and meta.get("kind") == "audio-visual":
        return split_explanation(expl)
    return {"": expl}


# -- driver ----------------------------------------------------------------------------------------------------
def _figures_of(expl: Explanation, name: str, out: Path, formats: tuple[str, ...], written: list[Path]) -> list[str]:
    """Write the figures one explanation (or one part of one) allows; appends to ``written``, returns the kinds."""
    kinds = []
    if expl.method == "extremal" or expl.masks is not None:
        for i in range(expl.batch_size):  # one panel per explained input (A and B, source 1 and 2)
            suffix = "" if expl.batch_size == 1 else f"_{i}"
            written += save_figure(figure_method_panel(expl, i), out / f"extremal_{name}{suffix}", formats)
        kinds.append("extremal")
        if "area_growth" in expl.scores and not expl.metadata.get("part"):  # parts share the joint score: once
            written += save_figure(figure_area_growth(expl), out / f"area_growth_{name}", formats)
            kinds.append("area growth")
    if "pca" in expl.method:  # a part whose features were not embedded (no rgb_* array) has no colours to show
        if has_rgb(expl):
            written += save_figure(figure_pca_rgb(expl), out / f"pca_rgb_{name}", formats)
            kinds.append("pca-rgb")
    elif expl.metadata.get("segments") and expl.attribution.dim() == 3:
        written += save_figure(figure_aba(expl), out / f"aba_{name}", formats)
        kinds.append("A-B-A")
    elif expl.attribution.dim() == 3 and tuple(expl.axes)[:1] in (("freq",), ("mel",)):
        written += save_figure(figure_aba(expl), out / f"tf_{name}", formats)  # the same layout, no turns
        kinds.append("T-F map")
    elif expl.attribution.dim() == 4:
        written += save_figure(figure_face_strip(expl), out / f"face_{name}", formats)
        kinds.append("face strip")
    return kinds


def make_figures(explanation_roots: list[Path], benchmark: Path | None, out: Path,
                 formats: tuple[str, ...] = ("pdf", "png")) -> list[Path]:
    """Write every figure the saved material allows; returns the files written. Prints what it skipped."""
    roots = list(explanation_roots)
    if benchmark is not None and (benchmark / "explanations").exists():
        roots.append(benchmark / "explanations")
    found = find_explanations(roots)
    written: list[Path] = []
    aba_by_method: dict[str, Explanation] = {}
    with paper_style():
        for tag, folder in found.items():
            kinds = []
            whole = Explanation.load(folder)
            if len(split_parts(whole)) > 1 and "area_growth" in whole.scores:  # one curve for the joint score
                written += save_figure(figure_area_growth(whole), out / f"area_growth_{tag}", formats)
                kinds.append("area growth")
            for part, expl in split_parts(whole).items():
                name = f"{tag}_{part}" if part else tag
                kinds += [f"{k} ({part})" if part else k for k in _figures_of(expl, name, out, formats, written)]
                if (not part and expl.metadata.get("task") == "aba" and expl.metadata.get("segments")
                        and expl.attribution.dim() == 3):
                    aba_by_method[expl.method] = expl
            print(f"[figures] {tag}: {', '.join(kinds) or 'no paper figure for this kind (skipped)'}")
        if len(aba_by_method) > 1:
            written += save_figure(figure_aba_methods(aba_by_method), out / "aba_methods", formats)
        if benchmark is not None:
            rows, curves = read_benchmark(benchmark)
            if rows:
                written += save_figure(figure_benchmark_table(rows), out / "benchmark_table", formats)
            for task, per_method in curves.items():
                dele = {m: c["deletion"] for m, c in per_method.items()}
                ins = {m: c["insertion"] for m, c in per_method.items()}
                if dele:
                    written += save_figure(plot_faithfulness_curves(dele, ins, title=task), out / f"curves_{task}",
                                           formats)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--explanations", type=Path, nargs="*", default=[], help="folders searched for saved explanations")
    p.add_argument("--benchmark", type=Path, help="a method-benchmark output folder (results.csv, curves.json)")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "figures")
    p.add_argument("--formats", default="pdf,png", help="comma-separated: pdf, png, svg")
    args = p.parse_args(argv)
    if not args.explanations and args.benchmark is None:
        p.error("nothing to draw: pass --explanations DIR ... and/or --benchmark DIR")
    written = make_figures(args.explanations, args.benchmark, args.out, tuple(args.formats.split(",")))
    print(f"wrote {len(written)} files to {args.out}")
    return written


if __name__ == "__main__":
    main()
    sys.exit(0)
