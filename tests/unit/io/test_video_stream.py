"""Reading real-world video: a damaged packet in the middle, rotation metadata, frame-rate conversion, frames
decoded as a stream (generated clips, tests/toys/clips.py)."""

import warnings

import numpy as np
import pytest
import torch

from avxai.io.video import VideoClip, read_video, write_video
from avxai.io.video_stream import FrameSource, iter_frames, probe_video
from toys.clips import corrupt_packet, tone


def numbered_frames(n=30, height=48, width=64):
    """Frame t is a flat grey of level 8 t with a white square in its top-left corner (shows orientation)."""
    frames = torch.empty(n, height, width, 3, dtype=torch.uint8)
    for t in range(n):
        frames[t] = 8 * t
        frames[t, 4:16, 4:20] = 255
    return frames


def levels(frames):
    """The grey level of each frame, as its frame number (the centre pixel / 8)."""
    return (frames[:, frames.shape[1] // 2, frames.shape[2] // 2 + 10, 0].float() / 8).round().int().tolist()


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "numbered.mp4"
    frames = numbered_frames()
    write_video(path, VideoClip(frames, 25.0, tone(30 / 25, 8000), 8000))
    return path


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_a_bad_packet_in_the_middle_is_skipped_with_a_warning(clip_path, tmp_path, kind):
    bad = corrupt_packet(clip_path, tmp_path / f"bad_{kind}.mp4", kind, nth=10 if kind == "video" else 5)
    with pytest.warns(UserWarning, match=rf"bad_{kind}\.mp4: skipped 1 undecodable {kind} packet\(s\) of \d+ at 0\.\d\d s"):
        clip = read_video(bad, need_audio=True)
    good = read_video(clip_path, need_audio=True)
    assert clip.num_frames == good.num_frames == 30 and clip.audio.shape == good.audio.shape
    got, want = levels(clip.frames), levels(good.frames)
    if kind == "video":  # one frame lost: the frames before intact, the frames after on time (frames that
        # predict from the lost one show the decoder's concealment, as in FFmpeg and players: within 2 levels)
        # (the 10th packet in decoding order is frame 12's; it shows frame 11)
        diff = [i for i in range(30) if got[i] != want[i]]
        assert min(diff) == 12 and got[12] == want[11]
        assert all(abs(g - w) <= 2 for g, w in zip(got, want))
    else:  # the audio packet becomes silence of its length; the rest is untouched
        assert got == want
        silent = (clip.audio.abs() < 1e-6) & (good.audio.abs() > 1e-3)
        assert 500 < int(silent.sum()) < 2100  # about one aac packet (1024 samples)


def test_a_mostly_broken_file_is_refused(clip_path, tmp_path):
    bad = clip_path
    for k in range(4):  # 4 of 30 video packets: more than isolated damage
        bad = corrupt_packet(bad, tmp_path / f"bad{k}.mp4", "video", nth=5 + 5 * k)
    with pytest.raises(ValueError, match=r"4 of 30 video packets are undecodable"):
        read_video(bad)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    frames = numbered_frames(4)
    path = tmp_path / f"rot{rotation}.mp4"
    write_video(path, VideoClip(frames, 25.0), rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    assert (info.height, info.width) == ((64, 48) if rotation % 180 else (48, 64))
    clip = read_video(path)
    expected = np.rot90(frames.numpy(), rotation // 90, axes=(1, 2))  # counter-clockwise, as players show it
    assert clip.frames.shape == expected.shape
    assert float(np.abs(clip.frames.numpy().astype(float) - expected).mean()) < 3.0


def test_frame_rate_conversion_picks_the_nearest_frame_in_time(tmp_path):
    frames = numbered_frames(30)
    path = tmp_path / "ntsc.mp4"
    write_video(path, VideoClip(frames, 30000 / 1001, tone(30 * 1001 / 30000, 8000), 8000))
    assert probe_video(path).fps == pytest.approx(29.97, abs=0.01)
    clip = read_video(path, fps=25.0)
    assert clip.fps == 25.0
    want = [int(np.floor(k * (30000 / 1001) / 25 + 0.5)) for k in range(clip.num_frames)]
    assert levels(clip.frames) == want and abs(clip.num_frames - 25) <= 1


def test_frames_come_as_a_stream_and_on_demand(clip_path):
    chunks = list(iter_frames(clip_path, chunk=8))
    assert [c.shape[0] for c in chunks] == [8, 8, 8, 6]  # never more than a chunk held by the reader
    source = FrameSource(clip_path, None, 30, (48, 64))
    assert source.shape == (30, 48, 64, 3) and source.dim() == source.ndim == 4
    assert levels(source[[3, 17, 29]]) == [3, 17, 29] and levels(source[5][None]) == [5]
    assert levels(source[:]) == list(range(30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_video(clip_path)  # an intact file: no warning


def test_a_frame_source_decodes_a_few_frames_at_a_time(clip_path, monkeypatch):
    """A figure's eight frames of a long 720p clip: the pass holds a chunk of SOURCE_CHUNK_FRAMES, not 64 frames."""
    import avxai.io.video_stream as stream

    sizes = []

    def counting(*args, **kwargs):
        for chunk in iter_frames(*args, **kwargs):
            sizes.append(chunk.shape[0])
            yield chunk

    monkeypatch.setattr(stream, "iter_frames", counting)
    source = FrameSource(clip_path, None, 30, (48, 64))
    assert levels(source[[2, 21]]) == [2, 21]
    assert max(sizes) == stream.SOURCE_CHUNK_FRAMES <= 8 and sum(sizes) >= 22  # decoded up to frame 21, in chunks
