"""Video files: write/read round trip, clear errors, audio-video alignment."""

import math

import numpy as np
import pytest
import torch

from avxai.io import VideoClip, check_av_alignment, read_video, write_video


def smooth_frames(n=20, height=48, width=64):
    """Gradients and a moving soft blob: content h264 keeps well (yuv420p halves colour resolution)."""
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    frames = torch.empty(n, height, width, 3)
    for t in range(n):
        blob = torch.exp(-((x - 10 - 2 * t) ** 2 + (y - 24) ** 2) / 60.0)
        frames[t, ..., 0] = 40 + 2 * x + 150 * blob
        frames[t, ..., 1] = 60 + 3 * y
        frames[t, ..., 2] = 120 + 4 * t
    return frames.clamp(0, 255).round().to(torch.uint8)


def tone(seconds, sample_rate=16000, channels=1):
    t = torch.arange(int(round(seconds * sample_rate))) / sample_rate
    wav = 0.4 * torch.sin(2 * math.pi * 330 * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 3 * t))
    return wav.repeat(channels, 1).float()


@pytest.mark.parametrize("fps", [25.0, 29.97])
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_frames_fps_audio(tmp_path, fps, channels):
    frames = smooth_frames()
    audio = tone(frames.shape[0] / fps, channels=channels)
    path = tmp_path / "clip.mp4"
    write_video(path, VideoClip(frames, fps, audio, 16000))
    clip = read_video(path, need_audio=True)
    assert clip.frames.shape == frames.shape and clip.frames.dtype == torch.uint8
    assert clip.fps == pytest.approx(fps, abs=1e-3)
    err = (clip.frames.float() - frames.float()).abs()
    assert err.mean() < 2.0, f"mean abs error {err.mean():.2f} grey levels (crf 17 on smooth content)"
    assert clip.sample_rate == 16000 and clip.audio.shape == audio.shape  # encoder priming and padding removed
    snr = 10 * torch.log10((audio**2).sum() / ((clip.audio - audio) ** 2).sum())
    assert snr > 20, f"aac round trip SNR {snr:.1f} dB: audio is misaligned or damaged"
    assert clip.duration_s == pytest.approx(frames.shape[0] / fps)
    assert torch.allclose(clip.frame_times()[:3], torch.tensor([0, 1 / fps, 2 / fps], dtype=torch.float64))
    check_av_alignment(clip.num_frames, clip.fps, clip.audio.shape[1], clip.sample_rate)


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    write_video(path, VideoClip(smooth_frames(5), 25.0))
    clip = read_video(path)
    assert clip.audio is None and clip.sample_rate is None and clip.num_frames == 5
    with pytest.raises(ValueError, match=r"silent\.mp4.*has no audio track, but the sound is needed"):
        read_video(path, need_audio=True)


def test_missing_corrupt_and_non_video_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"not found.*nothere\.mp4"):
        read_video(tmp_path / "nothere.mp4")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=r"broken\.mp4.*corrupt"):
        read_video(bad)
    good = tmp_path / "good.mp4"
    write_video(good, VideoClip(smooth_frames(10), 25.0))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.mp4"):
        read_video(truncated)
    import soundfile as sf

    wav = tmp_path / "speech.wav"
    sf.write(wav, tone(0.2)[0].numpy(), 16000)
    with pytest.raises(ValueError, match=r"speech\.wav.*no video stream"):
        read_video(wav)


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even frame sizes"):
        write_video(tmp_path / "odd.mp4", VideoClip(torch.zeros(2, 15, 16, 3, dtype=torch.uint8), 25.0))
    with pytest.raises(ValueError, match="1 or 2 audio channels"):
        write_video(tmp_path / "c3.mp4", VideoClip(smooth_frames(2), 25.0, tone(0.08, channels=3), 16000))
    with pytest.raises(ValueError, match="uint8"):
        VideoClip(torch.zeros(2, 16, 16, 3), 25.0)
    with pytest.raises(ValueError, match="sample_rate go together"):
        VideoClip(smooth_frames(2), 25.0, tone(0.08), None)
    with pytest.raises(ValueError, match="fps"):
        VideoClip(smooth_frames(2), 0.0)


def test_alignment_check():
    check_av_alignment(25, 25.0, 16000, 16000)  # equal
    check_av_alignment(25, 25.0, 16000 + 640, 16000)  # exactly one frame (40 ms) longer: tolerated
    with pytest.raises(ValueError, match=r"video lasts 1\.000 s.*audio lasts 1\.100 s"):
        check_av_alignment(25, 25.0, 17600, 16000)
    with pytest.raises(ValueError, match=r"video lasts 2\.000 s.*audio lasts 1\.000 s"):
        check_av_alignment(50, 25.0, 16000, 16000)


def test_model_layout():
    frames = smooth_frames(3)
    video = VideoClip(frames, 25.0).to_video_tensor()
    assert video.shape == (1, 3, 3, 48, 64) and video.max() <= 1.0
    assert torch.equal((video[0].permute(0, 2, 3, 1) * 255).round().to(torch.uint8), frames)
    assert np.isclose(VideoClip(frames, 25.0).duration_s, 0.12)


def _write_mp4(path, frames, fps, audio=None, sample_rate=16000, audio_start=0, faststart=False):
    """An mp4 written with PyAV directly: the index at the front (faststart) and/or the audio starting at
    ``audio_start`` samples, which write_video never produces."""
    import av
    from fractions import Fraction

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        rate = Fraction(fps).limit_denominator(1001)
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        astream = container.add_stream("aac", rate=sample_rate) if audio is not None else None
        if astream is not None:
            astream.layout = "mono"
        for t in range(frames.shape[0]):
            vf = av.VideoFrame.from_ndarray(frames[t].numpy(), format="rgb24")
            vf.pts, vf.time_base = t, 1 / rate
            for packet in vstream.encode(vf):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            af = av.AudioFrame.from_ndarray(audio.numpy(), format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = sample_rate, audio_start, Fraction(1, sample_rate)
            for packet in list(astream.encode(af)) + list(astream.encode()):
                container.mux(packet)


def test_a_truncated_file_with_its_index_in_front_is_refused(tmp_path):
    whole = tmp_path / "whole.mp4"
    _write_mp4(whole, smooth_frames(50), 25.0, tone(2.0), faststart=True)
    assert read_video(whole, need_audio=True).num_frames == 50
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.7)])
    with pytest.raises(ValueError, match=r"cut\.mp4.*truncated"):
        read_video(cut, need_audio=True)


def test_audio_that_starts_late_is_refused(tmp_path):
    late = tmp_path / "late.mp4"
    _write_mp4(late, smooth_frames(25), 25.0, tone(1.0), audio_start=4000)  # sound starts 250 ms after frame 0
    with pytest.raises(ValueError, match=r"late\.mp4.*starts \+\d+ ms from its first video frame"):
        read_video(late, need_audio=True)
