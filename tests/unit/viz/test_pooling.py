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
