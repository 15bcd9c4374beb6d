"""``avxai explain`` in segments: chosen from a small --max-memory and said in the plan line, turned off with
--segment-seconds 0, set explicitly, refused for a task that cannot be cut."""

import json

import pytest
import soundfile as sf
from toys.segments import RATE, noise_with_tone

from avxai.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TOY = ["--task", "speaker", "--model", "toys.segments:tone_speaker", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "long.wav"
    sf.write(str(path), noise_with_tone(4.0, (1.4, 2.2))[0].numpy(), RATE)
    return str(path)


def meta(out):
    return json.loads((out / "explanation.json").read_text())["metadata"]


def extremal_argv(wav, out):
    return ["explain", *TOY, "--input", wav, "--out", str(out), "--method", "extremal", "--iterations", "2",
            "--max-memory", "1M"]


def test_a_small_budget_chooses_segments_and_says_so(wav, tmp_path, capsys):
    out = tmp_path / "auto"
    assert main(extremal_argv(wav, out)) == 0
    plan = [line for line in capsys.readouterr().err.splitlines() if line.startswith("plan:")]
    assert len(plan) == 1 and "segment-wise:" in plan[0] and "--segment-seconds 0" in plan[0]
    assert "one row of the whole 4 s input needs" in plan[0] and "saw one segment at a time" in plan[0]
    info = meta(out)["segment_wise"]
    assert info["reason"].endswith("over the 1.0 MiB budget (--max-memory)") and info["seconds"] < 4
    assert len(list((out / "segments").iterdir())) == info["count"] > 1
    assert (out / "figure.png").exists()


def test_segment_seconds_0_explains_the_whole_input(wav, tmp_path, capsys):
    off = tmp_path / "off"
    assert main([*extremal_argv(wav, off), "--segment-seconds", "0"]) == 0
    assert "segment-wise" not in capsys.readouterr().err and "segment_wise" not in meta(off)
    assert not (off / "segments").exists()


def test_explicit_segments_with_occlusion(wav, tmp_path, capsys):
    out = tmp_path / "explicit"
    assert main(["explain", *TOY, "--input", wav, "--out", str(out), "--method", "occlusion", "--window", "257,16",
                 "--stride", "257,16", "--segment-seconds", "1.5", "--segment-context", "0.25"]) == 0
    err = capsys.readouterr().err
    assert "segment-wise: 3 segments of 1.5 s (+0.25 s context each side) because --segment-seconds 1.5" in err
    info = meta(out)["segment_wise"]
    assert info["count"] == 3 and info["overlap_s"] == 0.5 and [s["status"] for s in info["segments"]] == \
        ["explained"] * 3
    assert main(["explain", *TOY, "--input", wav, "--out", str(out), "--method", "occlusion", "--window", "257,16",
                 "--stride", "257,16", "--segment-seconds", "1.5", "--segment-context", "0.25"]) == 0
    assert [s["status"] for s in meta(out)["segment_wise"]["segments"]] == ["reused"] * 3  # a rerun resumes


def test_a_task_that_cannot_be_cut_is_one_error(wav, tmp_path, capsys):
    code = main(["explain", "--task", "frames", "--model", "toys.specs:vad", "--input", wav, "--out",
                 str(tmp_path / "f"), "--segment-seconds", "2", "--quiet"])
    assert code == 2
    assert "--task frames cannot be explained in segments" in capsys.readouterr().err


def test_av_clip_in_segments_through_the_cli_with_its_frames_figure(tmp_path, capsys):
    import numpy as np
    from toys.clips import render, write_clip

    n = 30  # 1.2 s at 25 fps
    pos = np.tile([[70.0, 30.0, 90.0]], (n, 1))
    pos[:, 0] += np.arange(n)
    clip = write_clip(tmp_path / "clip.mp4", render(n, (160, 240), [("astronaut", pos)]))
    out = tmp_path / "av"
    code = main(["explain", "--task", "av-enhancement", "--input", str(clip), "--out", str(out), "--method",
                 "extremal", "--iterations", "1", "--areas", "0.3", "--segment-seconds", "0.6", "--quiet",
                 "--threads", "1", "--track-cache", str(tmp_path / "cache")])
    assert code == 0
    assert "segment-wise: 2 segments of 0.6 s" in capsys.readouterr().err
    doc = meta(out)
    assert doc["segment_wise"]["count"] == 2 and doc["modality"]["parts"]["video"]["grid_shape"] == [30, 64, 64]
    assert len(doc["crop_boxes"]) == 30  # the whole clip's face track
    assert (out / "frames.png").exists() and (out / "figure.png").exists()


def test_a_failed_segment_exits_1_keeps_the_others_and_the_rerun_explains_it(tmp_path, capsys):
    wav = noise_with_tone(4.0, (1.4, 2.2))
    wav[0, int(2.0 * RATE)] = 0.95  # a spike in the second of three segments: the toy fails there
    path = tmp_path / "spike.wav"
    sf.write(str(path), wav[0].numpy(), RATE)
    argv = ["explain", "--task", "speaker", "--input", str(path), "--out", str(tmp_path / "out"), "--quiet",
            "--threads", "1", "--target", "0", "--method", "occlusion", "--window", "257,16", "--stride", "257,16",
            "--segment-seconds", "1.5"]
    assert main([*argv, "--model", "toys.segments:ToneSpeaker", "--model-arg", "fail_above=0.8"]) == 1
    err = capsys.readouterr().err
    # segments start on STFT frames: 1.5 s is 1.496 s at a 128-sample hop
    assert "1 of 3 segments failed (1.496-2.992 s: ValueError: the model (ToneSpeaker)" in err
    assert "the toy fails on a spike" in err and "Run the same command again" in err
    assert [s["status"] for s in meta(tmp_path / "out")["segment_wise"]["segments"]] == \
        ["explained", "failed", "explained"]
    assert main([*argv, "--model", "toys.segments:ToneSpeaker"]) == 0  # the cause fixed: only that one runs
    assert [s["status"] for s in meta(tmp_path / "out")["segment_wise"]["segments"]] == \
        ["reused", "explained", "reused"]


def test_target_0_reaches_the_task_options():
    """``--target 0`` was dropped as falsy (0 == False), so the predicted class was explained instead."""
    from avxai.cli import build_parser, task_options
    from avxai.tasks import get_task

    args = build_parser().parse_args(["explain", "--task", "speaker", "--input", "x.wav", "--out", "o",
                                      "--target", "0"])
    assert task_options(get_task("speaker"), args).target == 0


def test_saliency_whose_row_does_not_fit_is_explained_in_segments_and_finds_the_tone(wav, tmp_path, capsys):
    import numpy as np
    import torch

    from avxai.explanation import Explanation

    out = tmp_path / "saliency"
    assert main(["explain", *TOY, "--input", wav, "--out", str(out), "--method", "saliency", "--max-memory",
                 "1M"]) == 0
    plan = [line for line in capsys.readouterr().err.splitlines() if line.startswith("plan:")]
    assert len(plan) == 1 and plan[0].startswith("plan: saliency, 1 gradient of the input")
    assert "segment-wise:" in plan[0] and "one row of the whole 4 s input needs" in plan[0]
    info = meta(out)["segment_wise"]
    assert info["count"] >= 3 and info["failed"] == [] and info["seconds"] < 4
    e = Explanation.load(out)
    times = np.asarray(e.coordinates["time"])
    assert e.attribution.shape == (1, 257, len(times)) and times[-1] == pytest.approx(4.0, abs=0.01)
    per_time = e.attribution[0].abs().sum(dim=0)
    inside = torch.from_numpy((times >= 1.4) & (times < 2.2))
    far = torch.from_numpy((times < 1.35) | (times > 2.25))  # beyond an STFT window (32 ms) of the tone's span
    assert per_time[far].max() < 0.1 * per_time[inside].median()  # the evidence: the tone's span, 1.4-2.2 s
