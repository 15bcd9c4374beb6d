"""Activation maximisation on face-crop video: a unit that wants a red lower half gets one."""

from __future__ import annotations

import numpy as np
import pytest

from avxai.inspect import VideoMaximiseConfig, maximise_video
from avxai.inspect.maximise import unit_objective
from toys.inspect_models import LowerHalfRed

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_red_lower_half_unit_gets_a_red_lower_half_and_a_grey_upper_half():
    model = LowerHalfRed(16)
    config = VideoMaximiseConfig(frames=4, steps=60, starts=2)
    result = maximise_video(model, unit_objective(model, "region", 0), 16, config)
    v = result.video  # (starts, frames, 3, 16, 16)
    assert v.shape == (2, 4, 3, 16, 16) and v.min() >= 0 and v.max() <= 1
    lower, upper = v[..., 8:, :], v[..., :8, :]
    assert (lower[:, :, 0] - lower[:, :, 1]).mean() > 0.5  # red, not green, where the unit looks
    assert abs((upper[:, :, 0] - upper[:, :, 1]).mean()) < 0.1  # nothing learned where it does not
    assert np.abs(np.diff(v, axis=1)).mean() < 0.05  # temporal="slow": the frames barely change
    assert all(f > s for f, s in zip(result.metadata["final_score"], result.metadata["start_score"]))


def test_spatial_and_temporal_terms_are_separate_fields():
    model = LowerHalfRed(8)
    base = maximise_video(model, unit_objective(model, "region", 0), 8, VideoMaximiseConfig(frames=3, steps=5))
    fast = maximise_video(model, unit_objective(model, "region", 0), 8,
                          VideoMaximiseConfig(frames=3, steps=5, temporal="fast"))
    assert not np.array_equal(base.video, fast.video)
    for name in ("l2", "tv_space", "tv_time", "temporal"):
        assert name in base.metadata["config"]
    with pytest.raises(ValueError, match="tv_space"):
        VideoMaximiseConfig(tv_space=-0.1)
    with pytest.raises(ValueError, match="crop_size"):
        maximise_video(model, unit_objective(model, "region", 0), 0)


def test_top_patches_of_the_red_lower_half_unit_are_red_lower_halves():
    import torch

    from avxai.inspect import TopSegmentsConfig
    from avxai.inspect.top_patches import top_patches

    model = LowerHalfRed(16)
    grey = torch.full((1, 4, 3, 16, 16), 0.5)
    red_mouth = grey.clone()
    red_mouth[:, 2, 0, 10:14, 3:7] = 1.0  # a red spot in the lower half of frame 2
    red_top = grey.clone()
    red_top[:, 1, 0, 2:6, 3:7] = 1.0  # a red spot in the upper half: the unit does not look there
    result = top_patches(model, "region", [red_top, red_mouth], TopSegmentsConfig(unit=0, top=2, per_recording=1))
    assert [p["name"] for p in result.patches] == ["clip 1"]  # clip 0's map is 0 everywhere: skipped
    p = result.patches[0]
    assert p["peak_frame"] == 2 and p["frames"] == (2, 2) and 10 <= p["rows"][0] <= p["rows"][1] <= 13
    assert 3 <= p["cols"][0] <= p["cols"][1] <= 6 and result.images[0].shape == (16, 16, 3)
