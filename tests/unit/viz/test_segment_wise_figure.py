"""A segment-wise explanation (avxai.tasks.segmented) says so in its figure: the title names the segments, dotted
lines mark where one segment meets the next, and a failed segment is hatched. Synthetic explanation, no method."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from avxai.explanation import Explanation  # noqa: E402
from avxai.viz import plot_explanation  # noqa: E402


def _stitched(segment_wise: bool) -> Explanation:
    frames = 600  # 6 s at 10 ms
    meta = {"scorer": {"scorer": "ClassLogit", "units": "logit", "target": [3]}}
    if segment_wise:
        spans = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
        meta["segment_wise"] = {"seconds": 2.0, "count": 3, "question": "each segment explained on its own",
                                "segments": [{"index": i, "start_s": a, "end_s": b} for i, (a, b) in enumerate(spans)],
                                "failed": [{"index": 1, "start_s": 2.0, "end_s": 4.0, "error": "boom"}]}
    return Explanation(method="saliency", attribution=torch.rand(1, 8, frames), grid=torch.rand(1, 8, frames) + 0.1,
                       axes=("freq", "time"),
                       coordinates={"freq": np.linspace(0, 8000, 8), "time": np.arange(frames) * 0.01},
                       units={"freq": "Hz", "time": "s"}, metadata=meta)


def _vertical_lines(ax) -> list[float]:
    return sorted({round(float(line.get_xdata()[0]), 6) for line in ax.lines
                   if len(set(np.asarray(line.get_xdata(), dtype=float))) == 1})


def test_a_segment_wise_figure_names_its_segments_and_marks_their_edges_and_failures():
    fig = plot_explanation(_stitched(True))
    assert "segment-wise: 3 segments of 2 s, each explained on its own" in fig._suptitle.get_text()
    maps = fig.axes[1]
    assert _vertical_lines(maps) == [2.0, 4.0]
    hatched = [p for p in maps.patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_x() == 2.0  # the failed segment, 2-4 s
    plt.close(fig)
    plain = plot_explanation(_stitched(False))
    assert "segment-wise" not in plain._suptitle.get_text() and _vertical_lines(plain.axes[1]) == []
    plt.close(plain)
