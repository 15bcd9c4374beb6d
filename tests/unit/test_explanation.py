import json

import numpy as np
import soundfile as sf
import torch

from avxai import Explanation, OcclusionConfig, Scorer, Spectrogram, occlusion
from toys.models import RegionEnergy, tone_in_noise


class First(Scorer):
    units = "a.u."

    def __call__(self, output):
        return output[:, 0]


def test_save_writes_json_arrays_figure_and_audio_and_loads_back(tmp_path):
    wav = tone_in_noise(seconds=0.5)
    mod = Spectrogram(wav, 16000, n_fft=256, hop_length=64)
    expl = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(8, 8), stride=(8, 8)))
    expl.metadata["segments"] = [{"start_s": 0.1, "end_s": 0.3, "label": "A"}]
    out = expl.save(tmp_path / "e")
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["method"] == "occlusion" and doc["axes"] == ["freq", "time"]
    assert doc["metadata"]["modality"]["sample_rate"] == 16000
    assert doc["metadata"]["config"]["window"] == [8, 8]
    assert "torch" in doc["metadata"]["versions"]
    for name in ("figure.png", "arrays.npz", "original.wav", "preserved.wav", "deleted.wav"):
        assert (out / name).stat().st_size > 0
    original, rate = sf.read(out / "original.wav")
    assert rate == 16000 and np.allclose(original, wav[0, 0].numpy(), atol=1e-5)
    preserved, _ = sf.read(out / "preserved.wav")
    assert not np.allclose(preserved, original)  # the masked input differs from the original
    back = Explanation.load(out)
    assert torch.allclose(back.attribution, expl.attribution)
    assert back.axes == expl.axes and back.units == expl.units
    assert np.allclose(back.coordinates["time"], expl.coordinates["time"])
    assert torch.allclose(back.scores["unmasked"], expl.scores["unmasked"])
    assert back.media["original"][0] == "audio"
    fig = back.plot()
    assert len(fig.axes) >= 3


def test_figures_follow_axis_names_not_the_number_of_axes(tmp_path):
    """A 3-D (delta, mel, time) grid is drawn plane by plane, a (time, height, width) grid as video frames."""
    import matplotlib.pyplot as plt

    from avxai.explanation import split_explanation
    from avxai.methods.extremal import ExtremalConfig, extremal
    from avxai.modalities import TensorModality
    from avxai.modalities.composite import CompositeModality
    from avxai.scorers import ClassLogit
    from avxai.viz import layout_of
    from avxai.viz.layout import grid_layout

    class Total(torch.nn.Module):
        def forward(self, x):
            parts = x if isinstance(x, tuple) else (x,)
            return torch.stack([p.flatten(1).sum(1) for p in parts], dim=1)

    gen = torch.Generator().manual_seed(0)
    planes = TensorModality(torch.rand(1, 1, 2, 6, 10, generator=gen), ("delta", "mel", "time"))
    frames = TensorModality(torch.rand(1, 1, 4, 6, 6, generator=gen), ("time", "height", "width"))
    assert grid_layout(planes.axes) == "planes" and grid_layout(frames.axes) == "frames"
    expl = occlusion(Total(), planes, ClassLogit(0), OcclusionConfig(window=(1, 2, 2)))
    assert layout_of(expl) == "attribution"
    fig = expl.plot()
    assert len([ax for ax in fig.axes if ax.get_images()]) == 2 * 2  # two planes, input and attribution each
    plt.close(fig)
    masks = extremal(Total(), planes, ClassLogit(0), ExtremalConfig(areas=(0.3,), iterations=3))
    assert layout_of(masks) == "masks"
    plt.close(masks.plot())
    joint = CompositeModality([planes, frames], ("spec", "video"))
    both = occlusion(Total(), joint, ClassLogit(0), OcclusionConfig(window=(1, 2, 2, 1, 2, 2)))
    assert layout_of(both) == "video"
    parts = split_explanation(both)
    assert parts["spec"].attribution.shape == (1, 2, 6, 10) and parts["video"].axes == ("time", "height", "width")
    plt.close(both.plot())  # the video part's frames and heat map
