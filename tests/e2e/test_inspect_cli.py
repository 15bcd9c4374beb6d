"""``avxai inspect``: each tool through the command line on the 1 kHz toy (known answers), on the bundled
SpeakerNet and on Resemblyzer's real weights; bad input is one line and exit code 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from avxai.cli import main
from avxai.io.audio import save_audio
from avxai.models.state import ASSETS_DIR
from toys.inspect_models import RECORDINGS, bursts

TOY = "toys.inspect_models:ToneUnits"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    paths = []
    for i, spec in enumerate(RECORDINGS):
        paths.append(str(save_audio(folder / f"rec{i}.wav", bursts(spec, seed=i), 16000)))
    return paths


def _json(folder):
    return json.loads((folder / "inspect.json").read_text())


def test_filters_of_the_toy_and_of_the_bundled_model(tmp_path):
    assert main(["inspect", "filters", "--model", TOY, "--out", str(tmp_path / "toy")]) == 0
    meta = _json(tmp_path / "toy")
    assert meta["kind"] == "waveform" and 1000.0 in meta["centres_hz"]
    assert (tmp_path / "toy" / "filters.png").stat().st_size > 1000
    assert main(["inspect", "filters", "--model", "speakernet", "--out", str(tmp_path / "spk")]) == 0
    meta = _json(tmp_path / "spk")
    assert meta["kind"] == "features" and meta["layer"] == "tdnn.0.0" and "mel" in meta["axis"]


def test_top_segments_cli_finds_the_1khz_bursts_and_writes_players(tmp_path, wavs):
    out = tmp_path / "top"
    assert main(["inspect", "top-segments", "--model", TOY, "--layer", "energy", "--unit", "1", "--input", *wavs,
                 "--top", "2", "--set", "per_recording=1", "--out", str(out)]) == 0
    segs = _json(out)["segments"]
    assert sorted(s["name"] for s in segs) == ["rec0.wav", "rec1.wav"]
    assert all(s["freq_hz"][0] < 1000 < s["freq_hz"][1] for s in segs)
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 2 and all((out / s["file"]).is_file() for s in segs)


def test_maximise_cli_puts_energy_at_1khz_and_writes_audio(tmp_path):
    out = tmp_path / "max"
    assert main(["inspect", "maximise", "--model", TOY, "--layer", "energy", "--unit", "1", "--seconds", "0.3",
                 "--steps", "30", "--starts", "1", "--set", "griffin_lim_iters=8", "--out", str(out)]) == 0
    arrays = np.load(out / "arrays.npz")
    peak = arrays["freqs_hz"][arrays["mean_spectrum_db"][0].argmax()]
    assert abs(peak - 1000) <= 64 and (out / "start_0.wav").is_file()
    assert "Griffin-Lim" in _json(out)["audio"]


def test_embeddings_cli_with_a_manifest_and_conditions(tmp_path, wavs, capsys):
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "start_s", "end_s", "speaker"])
        for i, spec in enumerate(RECORDINGS):
            for freq, a, b in spec:
                w.writerow([wavs[i], a, b, f"{freq:g} Hz"])
    out = tmp_path / "emb"
    assert main(["inspect", "embeddings", "--model", TOY, "--layer", "energy", "--labels", str(manifest),
                 "--conditions", "clean,noise:20", "--projections", "pca", "--out", str(out)]) == 0
    meta = _json(out)
    assert meta["utterances"] == 12 and meta["silhouette"]["speaker"] > 0.8
    assert "silhouette (cosine): speaker" in capsys.readouterr().out
    assert (out / "embeddings.png").is_file() and len(list((out / "audio").glob("*.wav"))) == 12


def test_embeddings_cli_of_separated_sources(tmp_path):
    paths = [str(save_audio(tmp_path / f"mix{s}.wav", bursts([(500.0, 0.0, 0.5), (2000.0, 0.0, 0.5)], seconds=0.5,
                                                             seed=s), 16000)) for s in range(3)]
    out = tmp_path / "sep"
    assert main(["inspect", "embeddings", "--model", TOY, "--layer", "energy", "--separator",
                 "toys.inspect_models:BandSplit", "--input", *paths, "--projections", "pca", "--out", str(out)]) == 0
    meta = _json(out)
    assert meta["utterances"] == 6 and set(meta["labels"]) == {"source", "mixture"}
    assert meta["silhouette"]["source"] > 0.9 and meta["separator"] == "toys.inspect_models:BandSplit"


def test_maximise_video_cli_on_an_audio_visual_toy(tmp_path):
    out = tmp_path / "video"
    assert main(["inspect", "maximise", "--model", "toys.inspect_models:LowerHalfRed", "--video", "--layer", "region",
                 "--unit", "0", "--frames", "3", "--steps", "40", "--starts", "1", "--out", str(out)]) == 0
    video = np.load(out / "arrays.npz")["video"]  # (1, 3, 3, 16, 16)
    lower = video[0, :, :, 8:]
    assert (lower[:, 0] - lower[:, 1]).mean() > 0.3 and (out / "maximise_video.png").is_file()
    assert "noise" in _json(out)["audio"]


@pytest.mark.parametrize("argv, message", [
    (["maximise", "--model", TOY], "exactly one target"),
    (["maximise", "--model", TOY, "--unit", "1"], "--unit needs --layer"),
    (["top-segments", "--model", TOY, "--layer", "nope", "--input", "WAV"], "no layer 'nope'"),
    (["embeddings", "--model", TOY, "--input", "WAV", "--conditions", "loud"], "unknown condition 'loud'"),
    (["filters", "--model", TOY, "--layer", "energy"], "Conv1d/2d/3d, Linear, LSTM or GRU"),
    (["maximise", "--model", TOY, "--video", "--class", "1"], "--video needs --layer NAME --unit N"),
    (["maximise", "--model", TOY, "--class", "1", "--frames", "3"], "--frames goes with --video"),
    (["top-segments", "--model", TOY, "--video", "--layer", "energy", "--input", "WAV"], "crop_size"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, wavs, capsys, argv, message):
    argv = [wavs[0] if a == "WAV" else a for a in argv]
    assert main(["inspect", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_resemblyzer_real_weights_on_real_speech(tmp_path):
    pytest.importorskip("resemblyzer")
    real = ASSETS_DIR / "real"
    assert main(["inspect", "filters", "--model", "resemblyzer", "--out", str(tmp_path / "f")]) == 0
    meta = _json(tmp_path / "f")
    assert meta["layer"] == "lstm" and "mel_filters" in meta["axis"]
    assert main(["inspect", "embeddings", "--model", "resemblyzer", "--input", str(real / "enroll_A.wav"),
                 str(real / "enroll_B.wav"), "--window", "1.2", "--projections", "pca", "--out",
                 str(tmp_path / "e")]) == 0
    meta = _json(tmp_path / "e")
    # enroll_A holds talker A only and enroll_B talker B: the real encoder separates them
    assert meta["utterances"] == 6 and meta["silhouette"]["speaker"] > 0.2
