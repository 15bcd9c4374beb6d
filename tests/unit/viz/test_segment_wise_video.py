"""A segment-wise audio-visual explanation says so in its figures as the audio ones do: the title names the
segments, dotted lines mark the seams on the audio panels and the per-frame curve, the face tile that starts a
segment (here at 0.4 s) is marked, and a failed segment is hatched and named on its tiles. Synthetic explanation
(no method runs); the same explanation without ``segment_wise`` draws none of it."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from avxai.explanation import Explanation  # noqa: E402
from avxai.viz.video import plot_frames_strip, plot_video_explanation  # noqa: E402

FPS, FRAMES, BINS, COLS = 25.0, 20, 6, 40  # 0.8 s: 20 frames of 8 x 8 px, a (6, 40) spectrogram at 20 ms


def _av(segment_wise: bool) -> Explanation:
    g = torch.Generator().manual_seed(0)
    a, v = BINS * COLS, FRAMES * 8 * 8
    parts = {"audio": {"kind": "spectrogram", "axes": ["freq", "time"], "grid_shape": [BINS, COLS]},
             "video": {"kind": "face-video", "axes": ["time", "height", "width"], "grid_shape": [FRAMES, 8, 8],
                       "fps": FPS}}
    meta = {"modality": {"kind": "audio-visual", "axes": ["joint"], "part_names": ["audio", "video"],
                         "part_sizes": [a, v], "parts": parts},
            "scorer": {"scorer": "SDR", "units": "dB", "source": 0}, "model": "AV"}
    if segment_wise:  # two segments of 0.4 s, the second failed
        meta["segment_wise"] = {"seconds": 0.4, "count": 2, "question": "each segment explained on its own",
                                "segments": [{"index": 0, "start_s": 0.0, "end_s": 0.4},
                                             {"index": 1, "start_s": 0.4, "end_s": 0.8}],
                                "failed": [{"index": 1, "start_s": 0.4, "end_s": 0.8, "error": "boom"}]}
    return Explanation(method="occlusion", grid=torch.rand(1, a + v, generator=g),
                       attribution=torch.rand(1, a + v, generator=g) - 0.4, axes=("joint",),
                       coordinates={"audio/freq": np.linspace(0, 4000, BINS), "audio/time": np.arange(COLS) * 0.02,
                                    "video/time": np.arange(FRAMES) / FPS},
                       units={"joint": "cell", "audio/freq": "Hz", "audio/time": "s", "video/time": "s"},
                       scores={"unmasked": torch.tensor([2.9])}, metadata=meta)


@dataclass
class Track:  # what plot_frames_strip reads of a FaceTrack
    boxes: torch.Tensor
    report: dict
    frame_size: tuple = (24, 32)
    source: str = "toy"

    @property
    def num_frames(self):
        return int(self.boxes.shape[0])


def _seams(ax) -> list[float]:  # the dotted grey seam lines of draw_segment_edges
    return sorted({round(float(line.get_xdata()[0]), 6) for line in ax.lines if line.get_color() == "0.45"})


def _marked_tiles(fig) -> list[str]:  # titles of the tiles with the dotted left edge (mark_segment_tile)
    return [ax.get_title() for ax in fig.axes
            if any(line.get_color() == "0.45" and line.get_transform() == ax.transAxes for line in ax.lines)]


def _hatched_tiles(fig) -> int:  # tiles (no time axis) covered by the failed segment's hatching
    return sum(1 for ax in fig.axes if not ax.axison and any(p.get_hatch() for p in ax.patches))


def test_the_av_figure_names_the_segments_marks_the_seams_and_the_tile_that_starts_a_segment():
    fig = plot_video_explanation(_av(True), count=5)  # frames 0, 5, 10, 14, 19: 0.4 s is frame 10
    assert "segment-wise: 2 segments of 0.4 s, each explained on its own" in fig._suptitle.get_text()
    by_title = {ax.get_title(loc="left"): ax for ax in fig.axes}
    for name in ("mixture spectrogram", "audio evidence", "video evidence per frame"):
        assert _seams(by_title[name]) == [0.4], name
        hatched = [p for p in by_title[name].patches if p.get_hatch()]
        assert len(hatched) == 1 and np.isclose(hatched[0].get_x(), 0.4), name  # the failed 0.4-0.8 s
    # the tile at 0.4 s starts the failed segment 2 (crop and map: both dotted); its three columns are hatched
    assert _marked_tiles(fig) == ["0.40 s\nseg. 2\nfailed", ""] and _hatched_tiles(fig) == 6
    plt.close(fig)
    plain = plot_video_explanation(_av(False), count=5)
    assert "segment-wise" not in plain._suptitle.get_text() and _marked_tiles(plain) == []
    assert _hatched_tiles(plain) == 0
    assert all(_seams(ax) == [] and not [p for p in ax.patches if p.get_hatch()] for ax in plain.axes)
    plt.close(plain)


def test_the_frames_strip_marks_the_first_frame_of_a_new_segment():
    e = _av(True)
    e.metadata["segment_wise"]["failed"] = []  # both explained: the tile at 0.4 s starts segment 2
    frames = torch.zeros(FRAMES, 24, 32, 3, dtype=torch.uint8)
    track = Track(torch.tensor([[4.0, 2.0, 20.0, 18.0]]).repeat(FRAMES, 1), {})
    fig = plot_frames_strip(e, frames, track, count=5)
    assert "segment-wise: 2 segments" in fig._suptitle.get_text()
    assert _marked_tiles(fig) == ["0.40 s\nseg. 2", ""] and _hatched_tiles(fig) == 0
    plt.close(fig)
    e.metadata.pop("segment_wise")
    plain = plot_frames_strip(e, frames, track, count=5)
    assert _marked_tiles(plain) == [] and "segment" not in " ".join(ax.get_title() for ax in plain.axes)
    plt.close(plain)
