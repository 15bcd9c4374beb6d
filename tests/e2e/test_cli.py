import json
import subprocess
import sys

import pytest

from avxai.models.checkpoint import ASSETS_DIR

from avxai.cli import main
from avxai.config import build_config
from avxai.methods import get_method

ASSETS = ASSETS_DIR / "speaker"


def test_help_describes_every_explain_option(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = capsys.readouterr().out
    for flag in ("--task", "--method", "--input", "--reference", "--enroll", "--source", "--target", "--segments",
                 "--model", "--architecture", "--n-fft", "--hop-length", "--n-mels", "--resample", "--perturbation",
                 "--config", "--set", "--areas", "--window", "--stride", "--iterations", "--batch-size", "--seed"):
        assert flag in text


def test_method_config_from_yaml_sets_and_shortcuts(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("occlusion:\n  batch_size: 7\n  listen_fraction: 0.3\n")
    cls = get_method("occlusion").config_class
    cfg = build_config(cls, file=path, section="occlusion", sets=["window=[3, 4]"],
                       shortcuts={"stride": (2, 2), "areas": None})
    assert (cfg.batch_size, cfg.listen_fraction, cfg.window, cfg.stride) == (7, 0.3, (3, 4), (2, 2))
    with pytest.raises(ValueError, match="--areas does not apply to OcclusionConfig"):
        build_config(cls, shortcuts={"areas": (0.1,)})
    with pytest.raises(ValueError, match="has no field windw .*did you mean window"):
        build_config(cls, sets=["windw=3"])


def test_a_bad_set_value_names_the_field_and_type(tmp_path, capsys):
    code = main(["explain", "--task", "speaker", "--input", "x.wav", "--set", "window=2.5", "--out", str(tmp_path)])
    assert code == 2
    assert ("--set window=2.5: window expects a tuple of ints, an int or None (one per grid axis), got 2.5"
            in capsys.readouterr().err)


def test_an_option_the_task_does_not_read_is_an_error(tmp_path, capsys):
    code = main(["explain", "--task", "speaker", "--input", "x.wav", "--reference", "r.wav", "--out", str(tmp_path)])
    assert code == 2
    assert "--reference do(es) not apply to --task speaker" in capsys.readouterr().err


def test_unreadable_input_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file at all")
    code = main(["explain", "--task", "speaker", "--input", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "cannot read audio file" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "avxai.cli", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "explain" in out.stdout


needs_speaker_assets = pytest.mark.skipif(not (ASSETS / "speaker_net.pt").is_file(),
                                          reason="bundled model missing; run recipes/speaker/train.py")


@needs_speaker_assets
def test_demo_writes_the_explanation_and_finds_speaker_a(tmp_path):
    from avxai.demo import run_demo

    # the demo's own pipeline with coarser windows (64 bins x 24 frames) so the test stays short
    expl = run_demo(out=tmp_path, progress=False, window=(64, 24), stride=(64, 24))
    for name in ("explanation.json", "arrays.npz", "figure.png", "original.wav", "preserved.wav", "deleted.wav"):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0
    doc = json.loads((tmp_path / "explanation.json").read_text())
    assert doc["method"] == "occlusion"
    assert [s["label"] for s in doc["metadata"]["segments"]] == ["A", "B", "A"]
    # A's turns are 2/3 of the utterance; the evidence for A must be concentrated there clearly beyond that
    assert expl.metadata["positive_mass_in_A"] >= 0.8


@needs_speaker_assets
def test_explain_cli_on_the_bundled_utterance(tmp_path):
    code = main(["explain", "--task", "speaker", "--input", str(ASSETS / "aba.wav"), "--method", "occlusion",
                 "--window", "64,24", "--stride", "64,24", "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads((tmp_path / "explanation.json").read_text())
    assert doc["method"] == "occlusion" and doc["metadata"]["task"] == "speaker"
    assert (tmp_path / "figure.png").is_file()


@needs_speaker_assets
def test_explain_cli_measures_the_evidence_in_labelled_segments(tmp_path, capsys):
    out = tmp_path / "seg"
    code = main(["explain", "--task", "speaker", "--input", str(ASSETS / "aba.wav"), "--method", "occlusion",
                 "--score", "log-probability", "--target", "0", "--segments", str(ASSETS / "aba_segments.json"),
                 "--window", "64,24", "--stride", "64,24", "--out", str(out), "--quiet"])
    assert code == 0
    shares = json.loads((out / "explanation.json").read_text())["metadata"]["segment_mass"]
    assert set(shares) == {"A", "B"}
    # A's turns are 2/3 of the frames: the evidence for A (class 0) lies there clearly beyond that share
    assert shares["A"]["positive"][0] >= 0.8
    # the turns cover every frame but the last one (centred at 3.0 s, the end of the last turn)
    assert 0.97 <= shares["A"]["positive"][0] + shares["B"]["positive"][0] <= 1.0 + 1e-9
    assert "in segments 'A': " in capsys.readouterr().out
