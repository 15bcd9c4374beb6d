"""Every figure type prints: 3.4 or 7.0 in wide, no text under 7 pt; and the figures say what they should.

Tiny synthetic explanations (no method runs), so the whole file draws ~20 figures in a few seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from avxai.explanation import Explanation  # noqa: E402
from avxai.viz import plot_explanation  # noqa: E402
from avxai.viz.curves import plot_faithfulness_curves  # noqa: E402
from avxai.viz.growth import plot_area_growth  # noqa: E402
from avxai.viz.labels import growth_kind, growth_text, perturbation_phrase, score_phrase  # noqa: E402
from avxai.viz.separation import best_iou, chance_iou, plot_mask_vs_ibm  # noqa: E402
from avxai.viz.style import MIN_FONT_PT, PAGE_WIDTH, WIDTHS, check_print, paper_style, text_sizes  # noqa: E402
from avxai.viz.video import is_time_only, plot_frames_strip, shares_at_floor  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SEGMENTS = [{"start_s": 0.0, "end_s": 0.1, "label": "A"}, {"start_s": 0.1, "end_s": 0.2, "label": "B"},
            {"start_s": 0.2, "end_s": 0.3, "label": "A"}]
GEN = torch.Generator().manual_seed(0)


def _rand(*shape):
    return torch.rand(*shape, generator=GEN)


def _spec_meta(axes=("freq", "time"), n_mels=None, **extra):
    return {"modality": {"kind": "spectrogram", "axes": list(axes), "perturbation": "Constant(value=0.0)",
                         "n_mels": n_mels}, "model": "ToyNet", "model_name": "toy", **extra}


def spectrogram(method="occlusion", batch=1, mel=False, masks=False, scorer=None, unmasked=0.5, **meta):
    f_axis = "mel" if mel else "freq"
    freqs = np.geomspace(80, 3800, 12) if mel else np.linspace(0, 4000, 12)
    times = np.arange(30) * 0.01
    grid = _rand(batch, 12, 30)
    attr = _rand(batch, 12, 30) - 0.4  # signed
    kw = {}
    if masks:
        m = (_rand(batch, 3, 12, 30) > 0.7).float()
        kw = dict(masks=m, areas=[0.05, 0.1, 0.3], attribution=m.mean(1),
                  scores={"preserved": torch.full((batch, 3), 0.4), "deleted": torch.full((batch, 3), 0.1),
                          "area_growth": torch.tensor([[0.7, 0.8, 0.9]] * batch),
                          "unmasked": torch.full((batch,), unmasked)})
    else:
        kw = dict(attribution=attr, scores={"unmasked": torch.full((batch,), unmasked)})
    scorer = scorer or {"scorer": "SpeakerCosine", "units": "cosine"}
    return Explanation(method=method, grid=grid, axes=(f_axis, "time"),
                       coordinates={f_axis: freqs, "time": times}, units={f_axis: "Hz", "time": "s"},
                       metadata={**_spec_meta((f_axis, "time"), 12 if mel else None), "scorer": scorer,
                                 "growth_areas": [0.05, 0.1, 0.3], "variant": "preserve",
                                 "perturbation": "Constant(value=0.0)", **meta}, **kw)


def video(method="occlusion", masks=False, time_only=False):
    grid = _rand(1, 6, 16, 16)
    attr = _rand(1, 6, 16, 16) - 0.3
    if time_only:
        attr = (_rand(1, 6, 1, 1) - 0.5).expand(1, 6, 16, 16).clone()
    kw = dict(attribution=attr, scores={"unmasked": torch.tensor([3.0])})
    if masks:
        m = _rand(1, 2, 6, 16, 16)
        kw = dict(attribution=m.mean(1), masks=m, areas=[0.1, 0.2],
                  scores={"unmasked": torch.tensor([3.0]), "preserved": torch.tensor([[2.0, 2.5]]),
                          "area_growth": torch.tensor([[2 / 3, 2.5 / 3]])})
    return Explanation(method=method, grid=grid, axes=("time", "height", "width"),
                       coordinates={"time": np.arange(6) / 25}, units={"time": "s", "height": "px", "width": "px"},
                       metadata={"modality": {"kind": "face-video", "fps": 25.0, "perturbation": "Mean(axes=('time',))"},
                                 "scorer": {"scorer": "SDR", "units": "dB", "source": 0}, "model": "AV",
                                 "growth_areas": [0.1, 0.2], "score_against": "reference",
                                 "face_track": {"undetected": [{"start": 2, "end": 3}],
                                                "switches": [{"frame": 4}]}}, **kw)


def audio_visual(method="occlusion", masks=False, floor=False):
    """An audio-visual explanation over a joint grid: a (6, 10) spectrogram and a (4, 8, 8) face video."""
    a, v = 6 * 10, 4 * 8 * 8
    grid = torch.cat([_rand(1, a), _rand(1, v)], dim=1)
    parts = {"audio": {"kind": "spectrogram", "axes": ["freq", "time"], "grid_shape": [6, 10],
                       "perturbation": "Constant(value=0.0)"},
             "video": {"kind": "face-video", "axes": ["time", "height", "width"], "grid_shape": [4, 8, 8],
                       "fps": 25.0, "perturbation": "Mean(axes=('time',))"}}
    shares = {"unmasked": [2.9], "audio_masked": [-100.0 if floor else -5.0], "video_masked": [-1.8],
              "both_masked": [-100.0 if floor else -9.0], "audio_share": [0.7], "video_share": [0.3], "units": "dB"}
    kw = dict(attribution=torch.cat([_rand(1, a), _rand(1, v)], 1) - 0.4, scores={"unmasked": torch.tensor([2.9])})
    if masks:
        m = _rand(1, 2, a + v)
        kw = dict(attribution=m.mean(1), masks=m, areas=[0.1, 0.2],
                  scores={"unmasked": torch.tensor([2.9]), "area_growth": torch.tensor([[0.5, 0.9]]),
                          "preserved": torch.tensor([[1.45, 2.6]])})
    return Explanation(method=method, grid=grid, axes=("joint",), coordinates={},
                       units={"joint": "cell", "audio/freq": "Hz", "audio/time": "s", "video/time": "s",
                              "audio/freq_coords": "Hz"},
                       metadata={"modality": {"kind": "audio-visual", "axes": ["joint"], "part_names": ["audio", "video"],
                                              "part_sizes": [a, v], "parts": parts},
                                 "scorer": {"scorer": "SDR", "units": "dB", "source": 0}, "model": "AV",
                                 "av_shares": shares, "growth_areas": [0.1, 0.2]}, **kw)


@dataclass
class Track:  # what plot_frames_strip reads of a FaceTrack
    boxes: torch.Tensor
    frame_size: tuple = (24, 32)
    source: str = "toy"
    report: dict = field(default_factory=lambda: {"undetected": [{"start": 1, "end": 2}], "switches": [{"frame": 3}]})

    @property
    def num_frames(self):
        return int(self.boxes.shape[0])


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _curves():
    f = [0.0, 0.5, 1.0]
    return {m: {"fractions": f, "scores": [[1.0, s, -0.1]], "auc": [0.4], "normalise": "range"}
            for m, s in (("occlusion", 0.3), ("saliency", 0.5), ("random", 0.8))}


def _paper_kinds():
    here = REPO / "recipes" / "paper_figures"
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    from figure_kinds.benchmark import figure_benchmark_table
    from figure_kinds.extremal import figure_area_growth, figure_method_panel
    from figure_kinds.face import figure_face_strip
    from figure_kinds.pca_rgb import figure_pca_rgb
    from figure_kinds.time_frequency import figure_aba, figure_aba_methods

    rows = [{"task": "aba", "method": m, "mass": 0.5, "pointing": 1.0, "iou": 0.4, "deletion_auc": 0.2,
             "insertion_auc": 0.6, "randomisation_r": r, "s_per_input": 0.01}
            for m, r in (("occlusion", -0.6), ("saliency", 0.05), ("random", 0.0))]
    aba = spectrogram(batch=2, segments=SEGMENTS, labels=["speaker A", "speaker B"])
    sal = spectrogram(method="saliency", batch=2, segments=SEGMENTS, labels=["speaker A", "speaker B"])
    pca = video(method="pca-rgb")
    pca.arrays["rgb_video"] = _rand(1, 6, 3, 16, 16)
    return {
        "paper extremal panel": lambda: figure_method_panel(spectrogram("extremal", masks=True)),
        "paper area growth (two score kinds)": lambda: figure_area_growth(
            [spectrogram("extremal", masks=True), spectrogram("extremal", masks=True, unmasked=9.0,
                                                              scorer={"scorer": "SDR", "units": "dB", "source": 1})]),
        "paper A-B-A": lambda: figure_aba(aba),
        "paper A-B-A methods": lambda: figure_aba_methods({"occlusion": aba, "saliency": sal}),
        "paper face strip": lambda: figure_face_strip(video()),
        "paper face strip, time-only": lambda: figure_face_strip(video(method="gradcam", time_only=True)),
        "paper PCA-RGB": lambda: figure_pca_rgb(pca),
        "paper benchmark table": lambda: figure_benchmark_table(rows),
    }


def _frames_strip():
    boxes = torch.tensor([[4.0, 2.0, 20.0, 18.0]]).repeat(6, 1)
    frames = (torch.rand(6, 24, 32, 3, generator=GEN) * 255).to(torch.uint8)
    return plot_frames_strip(video(), frames, Track(boxes))


FIGURES = {
    "spectrogram attribution": lambda: plot_explanation(spectrogram(segments=SEGMENTS)),
    "mel attribution": lambda: plot_explanation(spectrogram(mel=True)),
    "curve attribution": lambda: plot_explanation(Explanation(
        method="occlusion", attribution=_rand(1, 20) - 0.5, grid=_rand(1, 20), axes=("time",),
        coordinates={"time": np.arange(20) * 0.01}, units={"time": "s"},
        metadata={"scorer": {"scorer": "ClassLogit", "units": "logit", "target": [1]}},
        scores={"unmasked": torch.tensor([1.0])})),
    "extremal panel": lambda: plot_explanation(spectrogram("extremal", masks=True, segments=SEGMENTS)),
    "extremal panel, mel": lambda: plot_explanation(spectrogram("extremal", masks=True, mel=True)),
    "extremal panel, column": lambda: plot_explanation(spectrogram("extremal", masks=True), width=3.4),
    "video attribution": lambda: plot_explanation(video()),
    "video mask": lambda: plot_explanation(video("extremal", masks=True)),
    "video time-only": lambda: plot_explanation(video("gradcam", time_only=True)),
    "audio-visual occlusion": lambda: plot_explanation(audio_visual()),
    "audio-visual extremal, share at floor": lambda: plot_explanation(audio_visual("extremal", True, floor=True)),
    "frames strip": _frames_strip,
    "area growth": lambda: plot_area_growth(spectrogram("extremal", masks=True)),
    "deletion / insertion curves": lambda: plot_faithfulness_curves(_curves(), _curves(), title="aba"),
    "separation vs IBM": lambda: plot_mask_vs_ibm(spectrogram("extremal", masks=True), ibm=_rand(12, 30) > 0.5,
                                                 area=0.1),
    "separation, attribution": lambda: plot_mask_vs_ibm(spectrogram(), ibm=_rand(12, 30) > 0.5),
}


@pytest.mark.parametrize("name", list(FIGURES) + list(_paper_kinds()))
def test_every_figure_prints_at_a_paper_width_with_readable_text(name):
    make = FIGURES.get(name) or _paper_kinds()[name]
    with paper_style():
        fig = make()
    try:
        width = round(float(fig.get_size_inches()[0]), 3)
        assert width in WIDTHS, f"{name}: {width} in wide"
        sizes = text_sizes(fig)
        assert sizes, f"{name}: no text at all"
        small = [(s, t) for s, t in sizes if s < MIN_FONT_PT]
        assert not small, f"{name}: text below {MIN_FONT_PT} pt: {small[:4]}"
    finally:
        plt.close(fig)


def _texts(fig) -> str:
    return "\n".join(t for _, t in text_sizes(fig))


def test_titles_name_model_score_target_unmasked_and_perturbation_and_count_sources_from_1():
    expl = spectrogram("extremal", masks=True, scorer={"scorer": "SDR", "units": "dB", "source": 1}, unmasked=10.7,
                       score_against="reference")
    fig = plot_explanation(expl)
    text = _texts(fig)
    plt.close(fig)
    assert "on toy" in text and "SDR of source 2 against its reference" in text
    assert "unmasked 10.7 dB" in text and "set to 0 (silence / black)" in text
    assert "Constant(" not in text and "source 1 " not in text
    assert score_phrase(spectrogram(target_label="cosine to the enrollment 'enroll_A'")) == \
        "cosine to the enrollment 'enroll_A'"
    assert perturbation_phrase("Mean(axes=('time',))") == "replaced by the mean over time"


def test_area_growth_of_db_scores_is_a_difference_and_ratios_only_for_positive_scores():
    assert growth_kind("dB", [-0.6]) == "db" and growth_kind("dB", [10.0]) == "db"
    assert growth_kind("cosine", [0.58]) == "ratio" and growth_kind("cosine", [-0.2]) == "score"
    assert growth_kind("logit", [2.0]) == "score"
    sdr = spectrogram("extremal", masks=True, unmasked=-2.0, scorer={"scorer": "SDR", "units": "dB", "source": 0})
    # preserved = area_growth * unmasked: 0.7 * -2 = -1.4 dB, i.e. +0.6 dB above the unmasked -2 dB (a ratio
    # would say 0.7 "x unmasked": a drop, with the sign flipped)
    assert growth_text(sdr).startswith("preserved - unmasked: +0.60, +0.40, +0.20 dB")
    fig = plot_area_growth([sdr, spectrogram("extremal", masks=True)])  # dB and cosine: two panels
    labels = [ax.get_ylabel() for ax in fig.axes]
    plt.close(fig)
    assert labels == ["preserved - unmasked (dB)", "preserved / unmasked"]


def test_signed_maps_are_centred_on_zero_with_one_colour_map_in_audio_and_video():
    for fig in (plot_explanation(spectrogram()), plot_explanation(audio_visual())):
        images = [im for ax in fig.axes for im in ax.get_images() if im.get_array().ndim == 2]
        signed = [im for im in images if im.get_cmap().name == "RdBu_r"]
        assert signed, "no signed map drawn with the one signed colour map"
        for im in signed:
            assert im.norm.vmin == pytest.approx(-im.norm.vmax)  # zero in the middle: white
        assert not any(im.get_cmap().name == "jet" for im in images)
        plt.close(fig)


def test_time_only_maps_are_curves_and_floor_shares_are_not_shown():
    assert is_time_only(video("gradcam", time_only=True).attribution[0].numpy())
    assert not is_time_only(video().attribution[0].numpy())
    fig = plot_explanation(video("gradcam", time_only=True))
    overlays = [im for ax in fig.axes for im in ax.get_images() if im.get_array().ndim == 3]
    text = _texts(fig)
    plt.close(fig)
    assert not overlays and "time-only" in text  # nothing painted over the faces
    floor = audio_visual(floor=True).metadata["av_shares"]
    assert shares_at_floor(floor) and not shares_at_floor(audio_visual().metadata["av_shares"])
    fig = plot_explanation(audio_visual(floor=True))
    text = _texts(fig)
    plt.close(fig)
    assert "not shown" in text and "70 %" not in text


def test_frames_strip_draws_the_crop_box_and_marks_tracking_problems():
    fig = _frames_strip()
    boxes = [p for ax in fig.axes for p in ax.patches]
    text = _texts(fig)
    plt.close(fig)
    assert len(boxes) == 6  # one crop box per shown frame
    assert "no face found" in text and "after a switch" in text


def test_separation_shows_iou_with_chance_and_best_and_a_two_level_ibm_legend():
    assert chance_iou(0.3, 0.5) == pytest.approx(0.15 / 0.65)
    assert best_iou(0.3, 0.5) == pytest.approx(0.6)
    fig = plot_mask_vs_ibm(spectrogram("extremal", masks=True), ibm=_rand(12, 30) > 0.5, area=0.1)
    text = _texts(fig)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    plt.close(fig)
    assert "chance" in text and "best reachable" in text
    assert any({t.get_text() for t in lg.get_texts()} == {"target louder", "rest louder"} for lg in legends)


def test_benchmark_table_bolds_the_randomisation_correlation_closest_to_zero():
    fig = _paper_kinds()["paper benchmark table"]()
    table = fig.axes[0].tables[0]
    cells = {(r, c): cell for (r, c), cell in table.get_celld().items()}
    col = [c for (r, c), cell in cells.items() if r == 0 and "isation" in cell.get_text().get_text()][0]
    bold = {cell.get_text().get_text() for (r, c), cell in cells.items()
            if c == col and r > 0 and cell.get_text().get_fontweight() == "bold"}
    plt.close(fig)
    assert bold == {"0.050"}  # saliency's 0.05, not occlusion's -0.6 (random's 0 is excluded)


def test_saved_figures_are_vector_pdf_and_png_at_print_width(tmp_path):
    from avxai.viz.style import save_figure

    with paper_style():
        fig = plot_explanation(spectrogram())
    check_print(fig)  # the rule as the library states it
    fig.axes[0].set_title("tiny", fontsize=5)
    with pytest.raises(ValueError, match="below 7"):
        check_print(fig)
    paths = save_figure(fig, tmp_path / "fig")
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    width_px = plt.imread(paths[1]).shape[1]
    assert width_px == pytest.approx(PAGE_WIDTH * 300, abs=2)
