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
