"""Bounded reads and safe writes (avxai.safety, avxai.io): what is refused, and that nothing blocks.

One test per kind of bad input: a WAV cut shorter than its header says, a non-regular file (FIFO, device,
directory), a file over the size cap, a symlink planted where avxai writes. FIFO tests carry a timeout, so a
regression fails instead of hanging the suite.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from avxai.config import build_config
from avxai.data.mixtures import load_segments
from avxai.explanation import Explanation
from avxai.io import load_audio, read_video
from avxai.io.audio import save_audio, wav_truncation
from avxai.methods.occlusion import OcclusionConfig
from avxai.safety import check_output_dir, max_bytes_for, read_regular, write_bytes

RATE = 8000


def _wav(path, seconds: float = 0.5):
    sf.write(str(path), (0.1 * np.random.default_rng(0).standard_normal(int(RATE * seconds))).astype("float32"),
             RATE, subtype="PCM_16")
    return path


def test_a_wav_shorter_than_its_header_says_is_refused(tmp_path):
    whole = _wav(tmp_path / "whole.wav", seconds=3.0).read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:44 + int(1.2 * RATE) * 2])
    with pytest.raises(ValueError, match=r"cut.wav is truncated: its header announces 3.000 s of audio but the file "
                                         r"holds 1.200 s"):
        load_audio(tmp_path / "cut.wav")
    assert load_audio(tmp_path / "whole.wav")[0].shape == (1, 1, 3 * RATE)
    # sizes left open by a streaming writer are not a truncation; other formats are not parsed
    open_sizes = bytearray(whole)
    open_sizes[40:44] = b"\xff\xff\xff\xff"
    assert wav_truncation(bytes(open_sizes[:100]), 1000) is None
    assert wav_truncation(b"fLaC" + bytes(100), 104) is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_only_regular_files_are_read_and_nothing_blocks(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.wav"
        os.mkfifo(path)  # nobody writes: a blocking open or read would hang here
        expected = "is a FIFO"
    elif kind == "device":
        path, expected = "/dev/zero", "is a character device"  # read whole, it would never end
    else:
        path, expected = tmp_path, "is a directory"
    with pytest.raises(ValueError, match=expected):
        load_audio(path)
    with pytest.raises(ValueError, match=expected):
        read_video(path)
    with pytest.raises(ValueError, match="config file .* " + expected):
        build_config(OcclusionConfig, file=path)
    with pytest.raises(ValueError, match="segments file .* " + expected):
        load_segments(path)


def test_the_size_cap_is_clear_and_configurable(tmp_path, monkeypatch):
    wav = _wav(tmp_path / "a.wav")
    with pytest.raises(ValueError, match=r"more than the 100 bytes cap for audio files; .*AVXAI_MAX_AUDIO_MB"):
        load_audio(wav, max_bytes=100)
    monkeypatch.setenv("AVXAI_MAX_AUDIO_MB", "0.001")
    assert max_bytes_for("audio") == 1048
    with pytest.raises(ValueError, match="cap for audio files"):
        load_audio(wav)
    monkeypatch.setenv("AVXAI_MAX_AUDIO_MB", "lots")
    with pytest.raises(ValueError, match="AVXAI_MAX_AUDIO_MB='lots' is not a number"):
        load_audio(wav)
    monkeypatch.delenv("AVXAI_MAX_AUDIO_MB")
    assert max_bytes_for("audio") == 1 << 30 and max_bytes_for("video") == 2 << 30
    assert read_regular(wav) == wav.read_bytes()


def test_a_planted_symlink_is_never_written_through(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "trials").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="trials is a symlink inside the output folder .* avxai did not create"):
        write_bytes(out, out / "trials" / "t1" / "figure.png", b"x")
    (out / "explanation.json").symlink_to(elsewhere / "victim.json")
    expl = Explanation(method="toy", attribution=torch.zeros(1, 2, 3), grid=torch.zeros(1, 2, 3), axes=("a", "b"))
    with pytest.raises(ValueError, match="explanation.json is a symlink"):
        expl.save(out, figure=False)
    (elsewhere / "victim.wav").write_bytes(b"keep")
    (out / "x.wav").symlink_to(elsewhere / "victim.wav")
    with pytest.raises(ValueError, match="symlink"):
        save_audio(out / "x.wav", torch.zeros(1, 100), RATE)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.wav"]
    assert (elsewhere / "victim.wav").read_bytes() == b"keep"
    # a stale temporary (or a link planted as one) is replaced, not followed
    (out / "ok.bin.tmp").symlink_to(elsewhere / "victim.wav")
    write_bytes(out, out / "ok.bin", b"new")
    assert (out / "ok.bin").read_bytes() == b"new" and (elsewhere / "victim.wav").read_bytes() == b"keep"


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="--out .*file exists and is not a directory"):
        check_output_dir(tmp_path / "file")
    assert check_output_dir(tmp_path / "new") == tmp_path / "new"
