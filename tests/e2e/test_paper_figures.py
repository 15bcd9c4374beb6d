"""The paper-figure recipe renders every figure type from small saved explanations (tiny toy models)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from torch import nn

from avxai import ClassLogit, Spectrogram, TensorModality
from avxai.methods import get_method
from avxai.methods.extremal import ExtremalConfig, extremal
from avxai.methods.gradients import SaliencyConfig, saliency
from avxai.methods.pca_rgb import PCARGBConfig
from avxai.methods.occlusion import OcclusionConfig, occlusion
from avxai.metrics import deletion_curve, insertion_curve
from avxai.viz.style import PAPER_RC, paper_style

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses in the recipe look their module up
    spec.loader.exec_module(module)
    return module


class WaveNet(nn.Module):
    sample_rate = 8000

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv1d(1, 4, 32, stride=16)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, wav):
        return self.head(torch.tanh(self.conv(wav)).mean(dim=-1))


class FaceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        nn.init.uniform_(self.conv.weight, 0.0, 1.0, generator=torch.Generator().manual_seed(1))

    def forward(self, v):
        gate = torch.zeros_like(v)
        gate[..., 7:11, 3:9] = 1.0  # the "mouth"
        return torch.relu(self.conv(v * gate)).mean(dim=(2, 3, 4))


class TFNet(nn.Module):
    """A (freq, time) model with a 4-channel feature map for PCA-to-RGB."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(5))

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))[:, :2]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    wav = torch.randn(1, 1, 2400, generator=torch.Generator().manual_seed(2)) * 0.2
    modality = Spectrogram(wav.repeat(2, 1, 1), 8000, n_fft=128, hop_length=64, n_mels=16)
    model, scorer = WaveNet(), ClassLogit([0, 1])
    segments = [{"start_s": 0.0, "end_s": 0.1, "label": "A"}, {"start_s": 0.1, "end_s": 0.2, "label": "B"},
                {"start_s": 0.2, "end_s": 0.3, "label": "A"}]
    curves, rows = {"aba": {}}, []
    for name, method, cfg in (("occlusion", occlusion, OcclusionConfig(window=(4, 8))),
                              ("saliency", saliency, SaliencyConfig())):
        expl = method(model, modality, scorer, cfg)
        expl.metadata.update(segments=segments, task="aba", labels=["speaker A", "speaker B"])
        expl.save(root / "bench" / "explanations" / "aba" / name, figure=False)
        d = deletion_curve(model, modality, scorer, expl, steps=4)
        i = insertion_curve(model, modality, scorer, expl, steps=4)
        curves["aba"][name] = {"deletion": d.to_dict(), "insertion": i.to_dict()}
        rows.append({"task": "aba", "method": name, "mass": 0.5, "pointing": 1.0, "iou": 0.4,
                     "deletion_auc": float(d.auc.mean()), "insertion_auc": float(i.auc.mean()),
                     "randomisation_r": float("nan"), "s_per_input": 0.01})
    bench = _load(REPO / "recipes/method_benchmark/run.py", "method_benchmark_run")
    bench.write_tables(rows, curves, root / "bench", {"test": True})

    # an extremal explanation (the real method, a few iterations) with its per-area masks and area growth
    one = Spectrogram(wav, 8000, n_fft=128, hop_length=64, n_mels=16)
    expl = extremal(model, one, ClassLogit(0), ExtremalConfig(areas=(0.1, 0.3), iterations=4))
    expl.save(root / "other" / "extremal", figure=False)

    video = torch.rand(1, 1, 4, 12, 12, generator=torch.Generator().manual_seed(3))
    face_model, face_modality = FaceNet(), TensorModality(video, ("time", "height", "width"))
    face = saliency(face_model, face_modality, ClassLogit(0))
    face.save(root / "other" / "face", figure=False)

    # PCA-to-RGB of a layer's features (the real method): per frame of a (time, height, width) input, and
    # one time-frequency image of a (freq, time) input
    pca_rgb = get_method("pca-rgb")
    pca_rgb(face_model, face_modality, ClassLogit(0), PCARGBConfig(layer="conv")).save(
        root / "other" / "pca_frames", figure=False)
    tf = torch.rand(1, 1, 10, 16, generator=torch.Generator().manual_seed(4))
    pca_rgb(TFNet(), TensorModality(tf, ("freq", "time")), ClassLogit(0), PCARGBConfig(layer="conv")).save(
        root / "other" / "pca_tf", figure=False)
    return root


def _not_blank(path: Path) -> None:
    assert path.exists(), f"{path.name} was not written"
    if path.suffix == ".png":
        image = mpimg.imread(path)
        assert image.std() > 0.01, f"{path.name} is blank"
    else:
        data = path.read_bytes()
        assert data.startswith(b"%PDF") and len(data) > 2000, f"{path.name} is not a real PDF"


@pytest.mark.slow  # ~10-30 s: matplotlib draws 9 figures twice (PDF with embedded fonts, PNG at 300 dpi)
def test_every_figure_type_is_drawn_from_saved_explanations(saved, tmp_path):
    root = saved
    figures = _load(REPO / "recipes/paper_figures/make_figures.py", "paper_figures")
    out = tmp_path / "figures"
    written = figures.main(["--benchmark", str(root / "bench"), "--explanations", str(root / "other"),
                            "--out", str(out)])
    names = {p.stem for p in written}
    expected = {"aba_aba_occlusion", "aba_aba_saliency", "aba_methods", "benchmark_table", "curves_aba",
                "face_face", "pca_rgb_pca_frames", "pca_rgb_pca_tf", "extremal_extremal", "area_growth_extremal",
                "tf_extremal"}
    assert expected <= names, f"missing figures: {sorted(expected - names)}"
    for stem in expected:
        for suffix in (".pdf", ".png"):
            _not_blank(out / f"{stem}{suffix}")


def test_paper_style_is_scoped():
    import matplotlib

    before = matplotlib.rcParams["font.size"]
    with paper_style():
        assert matplotlib.rcParams["font.size"] == PAPER_RC["font.size"]
        assert matplotlib.rcParams["pdf.fonttype"] == 42  # editable text in the PDF
    assert matplotlib.rcParams["font.size"] == before
    assert np.isfinite(before)
