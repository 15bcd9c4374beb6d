"""The frames task on a toy energy VAD whose active frames are known: the map must find them."""

from __future__ import annotations

import pytest
import torch

from avxai.methods import OcclusionConfig, occlusion
from avxai.scorers import FrameScore
from avxai.tasks import TASKS, frames
from avxai.tasks.frames import FramesOptions, parse_region
from toys.frames import BURSTS, CHUNK, RATE, EnergyVAD, bursts

COARSE = OcclusionConfig(window=(32, 8), stride=(32, 8), batch_size=64, progress=False)


def _time_share(explanation, modality, start_s: float, end_s: float) -> float:
    """Share of the positive attribution in the STFT frames between ``start_s`` and ``end_s``."""
    attribution = explanation.attribution[0].clamp(min=0)   # (freq, frames)
    hop = modality.hop_length / modality.sample_rate
    centres = (torch.arange(attribution.shape[-1]) + 0.5) * hop
    inside = (centres >= start_s) & (centres < end_s)
    return float(attribution[..., inside].sum() / attribution.sum())


def test_the_task_is_registered_with_no_default_model():
    assert TASKS["frames"].options_class is FramesOptions and TASKS["frames"].default_model is None


def test_parse_region():
    assert parse_region("1.0-2.5") == (1.0, 2.5)
    assert parse_region((1, 2)) == (1.0, 2.0)
    assert parse_region(None) == "detected" and parse_region("all") == "all" and parse_region("Detected") == "detected"
    for bad in ("2-1", "x-y", "1.5", (1, 2, 3), "-1-2"):
        with pytest.raises(ValueError, match="region"):
            parse_region(bad)


@pytest.mark.parametrize("state_hop", [True, False])
def test_a_region_finds_the_burst_inside_it(one_thread, state_hop):
    model = EnergyVAD(state_hop=state_hop)
    start, end, _ = BURSTS[1]
    problem = frames.build(model, FramesOptions(input=bursts(), sample_rate=RATE, region=f"{start}-{end}"))
    assert isinstance(problem.scorer, FrameScore) and problem.metadata["region"] == [start, end]
    explanation = occlusion(problem.model, problem.modality, problem.scorer, COARSE)
    assert torch.isfinite(explanation.attribution).all()
    assert explanation.scores["unmasked"].item() > 0.95
    # the evidence lies in the region's burst, not in the other one
    assert _time_share(explanation, problem.modality, start - 0.05, end + 0.05) > 0.9
    info = explanation.metadata["scorer"]
    assert info["frame_hop_from"] == ("model" if state_hop else "input duration / output frames")
    # derived: 2.2 s / 68 frames
    assert info["frame_hop_s"] == pytest.approx(CHUNK / RATE, rel=0.02 if not state_hop else 1e-9)


def test_detected_frames_cover_both_bursts(one_thread):
    problem = frames.build(EnergyVAD(logits=True), FramesOptions(input=bursts(), sample_rate=RATE, score="sigmoid",
                                                                 threshold=0.6))
    explanation = occlusion(problem.model, problem.modality, problem.scorer, COARSE)
    info = explanation.metadata["scorer"]
    active = sum((e - s) for s, e, _ in BURSTS) / (CHUNK / RATE)
    assert info["detect"] and 0 <= info["frames_scored"][0] - active <= 4  # + partly active edge frames
    shares = [_time_share(explanation, problem.modality, s - 0.05, e + 0.05) for s, e, _ in BURSTS]
    assert sum(shares) > 0.9 and min(shares) > 0.2


def test_max_over_all_frames_of_a_two_column_output(one_thread):
    problem = frames.build(EnergyVAD(columns=2), FramesOptions(input=bursts(), sample_rate=RATE, region="all",
                                                               reduce="max", score="logit", target=1))
    explanation = occlusion(problem.model, problem.modality, problem.scorer, COARSE)
    assert explanation.metadata["scorer"]["target"] == 1 and explanation.metadata["scorer"]["reduce"] == "max"
    assert torch.isfinite(explanation.attribution).all()


def test_bad_options_are_one_line():
    wav = bursts()
    with pytest.raises(ValueError, match="not a frame score"):
        frames.build(EnergyVAD(), FramesOptions(input=wav, sample_rate=RATE, score="cosine"))
    with pytest.raises(ValueError, match="not a reduction"):
        frames.build(EnergyVAD(), FramesOptions(input=wav, sample_rate=RATE, reduce="median"))
    with pytest.raises(ValueError, match="threshold .* applies only without a region"):
        frames.build(EnergyVAD(), FramesOptions(input=wav, sample_rate=RATE, region="0-1", threshold=0.3))
    with pytest.raises(ValueError, match="at 8000 Hz but the model takes 16000 Hz"):
        frames.build(EnergyVAD(), FramesOptions(input=wav, sample_rate=8000))
    # a one-column logit explained as a probability: refused when the scorer is prepared
    problem = frames.build(EnergyVAD(logits=True), FramesOptions(input=wav, sample_rate=RATE, region="all"))
    with pytest.raises(ValueError, match="'logit' or 'sigmoid'"):
        occlusion(problem.model, problem.modality, problem.scorer, COARSE)


def test_the_frames_report_measures_the_evidence_in_the_scored_frames(one_thread, tmp_path, capsys):
    start, end, _ = BURSTS[0]
    problem = frames.build(EnergyVAD(), FramesOptions(input=bursts(), sample_rate=RATE, region=(start, end)))
    explanation = occlusion(problem.model, problem.modality, problem.scorer, COARSE)
    report = frames.frames_report(problem, explanation)
    assert report["scored"] == list(range(16, 31))  # frames of 32 ms whose centres lie in 0.5-1.0 s
    assert len(report["values"]) == 68 and report["units"] == "probability"
    assert report["evidence_share_in_scored_frames"] > 0.9 and report["time_share_of_scored_frames"] < 0.3
    assert TASKS["frames"].write_outputs(problem, explanation, tmp_path) == ["frames.json", "frames.png"]
    assert "15 of 68 frames scored (region 0.5-1 s)" in capsys.readouterr().out
