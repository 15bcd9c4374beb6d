"""Maps wider than a figure are pooled along time before they are drawn (the signed extreme of an attribution, the
maximum of a level, the mean of a mask); narrower ones are drawn as they are. Synthetic explanations, no method."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from avxai.explanation import Explanation  # noqa: E402
from avxai.viz import plot_explanation  # noqa: E402
from avxai.viz.pooling import MAX_COLUMNS, pool_columns, pool_factor  # noqa: E402

HOP_S = 0.008


def _plane(frames: int, peak: tuple[int, int], dip: tuple[int, int]) -> Explanation:
    """A (freq, time) explanation ``frames`` wide: a small positive background, one strong cell and one
    negative cell."""
    rng = np.random.default_rng(0)
    attr = rng.uniform(0.0, 0.1, size=(1, 16, frames)).astype(np.float32)
    attr[0, peak[0], peak[1]] = 5.0
    attr[0, dip[0], dip[1]] = -3.0
    grid = rng.uniform(0.01, 1.0, size=(1, 16, frames)).astype(np.float32)
    grid[0, 2, frames - 1] = 50.0  # the loudest cell at the very end
    return Explanation(method="occlusion", attribution=torch.from_numpy(attr), grid=torch.from_numpy(grid),
                       axes=("freq", "time"),
                       coordinates={"freq": np.linspace(0, 8000, 16), "time": np.arange(frames) * HOP_S},
                       units={"freq": "Hz", "time": "s"}, scores={"unmasked": torch.tensor([1.0])})


def test_pooling_keeps_the_extremes_at_their_group_and_leaves_narrow_maps_alone():
    frames = 3 * MAX_COLUMNS + 7  # groups of 4 columns, the last one 3 wide
    k, groups = pool_factor(frames)
    assert (k, groups) == (4, -(-frames // 4))
    values = np.random.default_rng(1).uniform(-1, 1, size=(5, frames))
    values[3, 1001] = 9.0
    values[1, frames - 1] = -12.0  # in the short last group
    pooled = pool_columns(values, "extreme")
    assert pooled.shape == (5, groups)
    assert pooled.max() == 9.0 and np.unravel_index(pooled.argmax(), pooled.shape) == (3, 1001 // k)
    assert pooled.min() == -12.0 and np.unravel_index(pooled.argmin(), pooled.shape) == (1, groups - 1)
    assert np.array_equal(pool_columns(values, "max")[:, 5], values[:, 20:24].max(axis=1))
    np.testing.assert_allclose(pool_columns(values, "mean")[:, -1], values[:, 4 * (groups - 1):].mean(axis=1))
    narrow = values[:, :MAX_COLUMNS]
    assert pool_columns(narrow, "extreme") is narrow  # nothing changes below the figure's width
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_columns(values, "median")


def test_a_long_map_is_drawn_pooled_with_its_maximum_and_time_span():
    frames = 40 * MAX_COLUMNS + 1  # 10 minutes at a 128-sample hop, 16 kHz, is 75,001 frames
    expl = _plane(frames, peak=(7, 50_000), dip=(12, 3))
    fig = plot_explanation(expl)
    level, attribution = fig.axes[0].images[0], fig.axes[1].images[0]  # the colour bars come after
    shown = np.asarray(attribution.get_array())
    k, groups = pool_factor(frames)
    assert shown.shape == (16, groups) and groups <= MAX_COLUMNS
    assert shown.max() == 5.0 and np.unravel_index(shown.argmax(), shown.shape) == (7, 50_000 // k)
    assert shown.min() == -3.0 and np.unravel_index(shown.argmin(), shown.shape) == (12, 0)
    assert attribution.norm.vmin == -5.0 and attribution.norm.vmax == 5.0  # the full map's colour scale
    db = np.asarray(level.get_array())
    assert db.shape == (16, groups) and db[2, -1] == 0.0  # the loudest cell (0 dB re max) kept, at the end
    t = expl.coordinates["time"]
    assert fig.axes[0].get_xlim() == pytest.approx((t[0] - HOP_S / 2, t[-1] + HOP_S / 2))  # the same time span
    plt.close(fig)


def test_a_short_map_is_drawn_cell_for_cell():
    expl = _plane(300, peak=(7, 100), dip=(12, 3))
    fig = plot_explanation(expl)
    shown = np.asarray(fig.axes[1].images[0].get_array())
    assert np.array_equal(shown, expl.attribution[0].numpy())
    plt.close(fig)


def test_pool_image_is_the_block_mean_with_edges_repeated():
    from avxai.viz.pooling import pool_image

    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    pooled = pool_image(image, 2)
    assert pooled.shape == (3, 4, 3) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled[0, 0], image[:2, :2].reshape(4, 3).mean(axis=0))
    np.testing.assert_allclose(pooled[2, 3], image[4, 6])  # the corner block: the last pixel repeated
    assert pool_image(image, 1) is image


def test_a_wide_frame_strip_draws_frames_at_about_their_printed_pixels():
    from dataclasses import dataclass, field

    from avxai.viz.video import plot_frames_strip

    @dataclass
    class Track:  # what plot_frames_strip reads of a FaceTrack
        boxes: torch.Tensor
        frame_size: tuple = (360, 1280)
        report: dict = field(default_factory=dict)

        @property
        def num_frames(self):
            return int(self.boxes.shape[0])

    attr = torch.zeros(1, 6, 16, 16)
    attr[0, :, 4, 9] = 2.0  # one strong crop cell in every frame
    attr[0, :, 12, 2] = -1.0
    expl = Explanation(method="occlusion", attribution=attr, grid=torch.rand(1, 6, 16, 16),
                       axes=("time", "height", "width"), coordinates={"time": np.arange(6) / 25},
                       units={"time": "s", "height": "px", "width": "px"}, scores={"unmasked": torch.tensor([3.0])},
                       metadata={"modality": {"kind": "face-video", "fps": 25.0, "perturbation": "Constant(value=0.0)"}})
    frames = torch.full((6, 360, 1280, 3), 128, dtype=torch.uint8)
    boxes = torch.tensor([[400.0, 40.0, 720.0, 360.0]]).repeat(6, 1)  # a 320-px face box
    fig = plot_frames_strip(expl, frames, Track(boxes), count=6)
    top, bottom = fig.axes[0], fig.axes[6]
    drawn = np.asarray(top.images[0].get_array())
    assert drawn.shape[1] < 400 and drawn.shape[1] * 4 >= 1280 // 6  # pooled, still above the cell's pixels
    assert top.get_xlim() == (0.0, 1280.0) and top.get_ylim() == (360.0, 0.0)  # in frame pixels, as the boxes
    heat = np.asarray(bottom.images[1].get_array())  # the overlay's RGBA over the grey frame
    assert heat.shape[:2] == np.asarray(bottom.images[0].get_array()).shape[:2]
    k = 1280 // drawn.shape[1]
    row, col = np.unravel_index(heat[..., 3].argmax(), heat.shape[:2])  # the most opaque: the strong cell
    x, y = (col + 0.5) * 1280 / drawn.shape[1], (row + 0.5) * 360 / heat.shape[0]
    assert 400 + 9 * 20 - k <= x <= 400 + 10 * 20 + k and 40 + 4 * 20 - k <= y <= 40 + 5 * 20 + k
    plt.close(fig)
