"""Method-benchmark figures: read a benchmark output folder and draw its table (the curves are drawn by
:func:`avxai.viz.curves.plot_faithfulness_curves`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb

from avxai.viz.style import PAGE_WIDTH, method_colour


def read_benchmark(folder: Path) -> tuple[list[dict], dict]:
    """``(rows of results.csv, curves.json)`` of a method-benchmark output folder; empty when absent."""
    rows: list[dict] = []
    if (folder / "results.csv").exists():
        with open(folder / "results.csv") as fh:
            rows = list(csv.DictReader(fh))
    curves = json.loads((folder / "curves.json").read_text()) if (folder / "curves.json").exists() else {}
    return rows, curves


def figure_benchmark_table(rows: list[dict]):
    """The benchmark table at the page width; in each task the best value of each column is bold (random row
    excluded): the largest or smallest as the arrow says, and for the randomisation correlation the one
    closest to 0 (a map that does not change when the model's weights are randomised is the worst)."""
    columns = [("method", "method", None), ("mass", "mass in\ntruth ↑", max), ("pointing", "pointing\ngame ↑", max),
               ("iou", "IoU at\narea ↑", max), ("deletion_auc", "deletion\nAUC ↓", min),
               ("insertion_auc", "insertion\nAUC ↑", max), ("randomisation_r", "random-\nisation ρ\n(best ≈ 0)", "zero"),
               ("s_per_input", "s per\ninput", min)]

    def num(v: Any) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    cell_text, bold, task_rows = [], [], []
    for task in tasks:
        group = [r for r in rows if r["task"] == task]
        best = {}
        for key, _, pick in columns[1:]:
            values = [num(r[key]) for r in group if r["method"] != "random" and not np.isnan(num(r[key]))]
            if pick == "zero":  # a correlation with the randomised model's map: best when closest to 0
                best[key] = min(values, key=abs) if values else None
            else:
                best[key] = pick(values) if values else None
        task_rows.append(len(cell_text))
        cell_text.append([task] + [""] * (len(columns) - 1))
        bold.append([True] + [False] * (len(columns) - 1))
        for r in group:
            line, flags = [], []
            for key, _, _ in columns:
                v = r[key]
                if key == "method":
                    line.append(v)
                    flags.append(False)
                    continue
                x = num(v)
                line.append("–" if np.isnan(x) else (f"{x:.2f}" if key == "s_per_input" else f"{x:.3f}"))
                flags.append(best.get(key) is not None and not np.isnan(x) and x == best[key] and r["method"] != "random")
            cell_text.append(line)
            bold.append(flags)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.2 * (len(cell_text) + 2) + 0.3))
    ax.axis("off")
    widths = [0.22] + [0.78 / (len(columns) - 1)] * (len(columns) - 1)
    table = ax.table(cellText=cell_text, colLabels=[c[1] for c in columns], loc="center", cellLoc="center",
                     colWidths=widths)
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.25)
    for (r, c), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if r == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_height(cell.get_height() * 2.4)
            continue
        if bold[r - 1][c]:
            cell.set_text_props(fontweight="bold")
        if r - 1 in task_rows:
            cell.set_facecolor("#eeeeee")
        elif c == 0:
            rgb = np.array(to_rgb(method_colour(cell_text[r - 1][0])))
            cell.set_text_props(color=tuple(0.7 * rgb))  # darkened: yellow text stays readable on white
    return fig
