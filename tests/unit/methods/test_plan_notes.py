"""The plan line says when a long clip's occlusion windows grew beyond the modality's usual 0.2 s."""

import torch
from torch import nn

from avxai.methods import get_method
from avxai.methods.occlusion import OcclusionConfig
from avxai.methods.plan import plan_run
from avxai.modalities.video import FaceVideo


class _MeanFace(nn.Module):
    """A video model: the mean pixel of each clip. Shape: ``(batch, frames, 3, h, w)`` -> ``(batch,)``."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return video.mean(dim=(1, 2, 3, 4))


def _clip(seconds: float) -> FaceVideo:
    frames = int(seconds * 25)
    return FaceVideo(torch.rand(1, frames, 3, 8, 8, generator=torch.Generator().manual_seed(0)), 25.0,
                     perturbation="mean-time")


def test_the_plan_names_grown_windows_on_a_long_clip_and_nothing_on_a_short_one():
    method = get_method("occlusion")
    _, long_plan = plan_run(method, _MeanFace(), _clip(60.0), OcclusionConfig())
    assert any("1.88 s" in note for note in long_plan.notes), long_plan.notes
    assert "1.88 s" in long_plan.line()
    _, short_plan = plan_run(method, _MeanFace(), _clip(2.0), OcclusionConfig())
    assert not any("not 0.2 s" in note for note in short_plan.notes), short_plan.notes
    _, given = plan_run(method, _MeanFace(), _clip(60.0), OcclusionConfig(window=(5, 2, 2), stride=(5, 2, 2)))
    assert not any("1.88 s" in note for note in given.notes)  # the user's own windows: no note


def test_pca_rgb_has_a_plan_of_one_pass_without_gradients():
    from avxai.methods.pca_rgb import PCARGBConfig

    config = PCARGBConfig()
    same, plan = plan_run(get_method("pca-rgb"), _MeanFace(), _clip(2.0), config)
    assert same is config and plan is not None
    assert plan.passes == 1 and plan.batch == 1 and plan.memory > 0 and plan.seconds is not None
    assert plan.line().startswith("plan: pca-rgb, the layers' features")
