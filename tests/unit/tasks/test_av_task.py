"""The av-enhancement task on generated clips: every input problem in one message before any face detection,
conversions when asked, rotation applied, the face detections cached per clip and settings, and the warning
without a reference."""

import numpy as np
import pytest
import torch

from avxai.faces import FaceTracker
from avxai.models import load_model
from avxai.tasks.av_enhancement import AVEnhancementOptions, build, cache_file, describe_track
from toys.clips import render, write_clip

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model():
    return load_model("av-enhancer")  # 25 fps, 8 kHz mono, 64 px crops


def face_frames(n=12, rotate=0):
    pos = np.tile([[70.0, 30.0, 90.0]], (n, 1))
    pos[:, 0] += np.arange(n)
    frames = render(n, (160, 240), [("astronaut", pos)])
    return torch.from_numpy(np.ascontiguousarray(np.rot90(frames.numpy(), -rotate // 90, axes=(1, 2))))


@pytest.fixture
def count_detections(monkeypatch):
    calls = []
    real = FaceTracker.detect_stream

    def counted(self, chunks, source="<frames>", frame_size=None):
        calls.append(source)
        return real(self, chunks, source, frame_size)

    monkeypatch.setattr(FaceTracker, "detect_stream", counted)
    return calls


def options(path, tmp_path, **kw):
    return AVEnhancementOptions(input=path, stream="video", shares=False, track_cache=tmp_path / "cache", **kw)


def test_every_input_problem_in_one_message_before_detection(model, tmp_path, count_detections):
    path = write_clip(tmp_path / "film.mp4", face_frames(15), fps=30.0, sample_rate=16000, channels=2)
    with pytest.raises(ValueError) as err:
        build(model, options(path, tmp_path))
    message = str(err.value)
    assert message.startswith(f"{path} does not fit the model (25 fps video, 8000 Hz mono audio): (1) 30 frames")
    for fix in ("--fps-convert", "--mono", "--resample"):
        assert fix in message
    assert "ffmpeg" not in message and count_detections == []  # no face detection before the inputs are right
    with pytest.warns(UserWarning, match="no --reference"):
        problem = build(model, options(path, tmp_path, fps_convert=True, mono=True, resample=True))
    assert problem.modality.fps == 25.0 and problem.modality.num_frames in (12, 13)  # 0.5 s: 12.5 frames at 25 fps
    assert problem.metadata["face_track"]["fps_converted_from"] == pytest.approx(30.0)


def test_rotation_metadata_is_applied_before_tracking(model, tmp_path):
    path = write_clip(tmp_path / "phone.mp4", face_frames(rotate=90), rotation=90)  # stored sideways
    with pytest.warns(UserWarning, match="no --reference"):
        problem = build(model, options(path, tmp_path))
    report = problem.metadata["face_track"]
    assert report["rotation_applied_deg"] == 90 and report["detection_rate"] == 1.0
    assert problem.extras["frames"].shape == (12, 160, 240, 3)  # upright, as players show it
    boxes = torch.tensor(problem.metadata["crop_boxes"])
    assert float(((boxes[:, 0] + boxes[:, 2]) / 2 - (115 + torch.arange(12))).abs().max()) < 6


def test_detections_are_cached_per_clip_and_settings(model, tmp_path, count_detections):
    path = write_clip(tmp_path / "clip.mp4", face_frames())
    with pytest.warns(UserWarning, match="no --reference"):
        first = build(model, options(path, tmp_path))
    with pytest.warns(UserWarning, match="no --reference"):
        second = build(model, options(path, tmp_path))
    assert count_detections == [str(path)]  # the second command read the detections from the cache
    assert second.metadata["face_track"]["from_cache"] and not first.metadata["face_track"]["from_cache"]
    assert torch.equal(first.modality.crops, second.modality.crops)
    assert "read from" in describe_track(second.metadata["face_track"])
    with pytest.warns(UserWarning, match="no --reference"):
        build(model, options(path, tmp_path, face_confidence=0.95))  # other settings: detected again
    assert len(count_detections) == 2
    tracker = FaceTracker(crop_size=64)
    assert cache_file(path, tracker, None, tmp_path) != cache_file(path, tracker, 25.0, tmp_path)
    assert cache_file(path, tracker, None, "off") is None


def test_the_level_aware_score_closes_the_volume_loophole(model):
    """SDR ignores the output's scale: the whole mixture at 2 % gain keeps its score; the task's default
    (level-aware) score loses the 34 dB the output fell."""
    from avxai.io.audio import load_audio
    from avxai.models.av_enhancement import DEFAULT_AV_ENHANCER_CHECKPOINT
    from avxai.scorers.sdr import SDR

    clip, clean = (DEFAULT_AV_ENHANCER_CHECKPOINT.parent / n for n in ("example.mp4", "clean.wav"))
    reference, _ = load_audio(clean, sample_rate=8000)
    problem = build(model, AVEnhancementOptions(input=clip, reference=reference, stream="audio", shares=False,
                                                track_cache="off"))
    wav = problem.modality.model_input()
    with torch.no_grad():
        full, quiet = problem.model(wav), problem.model(0.02 * wav)
    plain = SDR(reference.reshape(1, 1, -1)).prepare(full)
    assert abs(float(plain(quiet) - plain(full))) < 3.0  # premise: the loophole is there
    scorer = problem.scorer.prepare(full)
    assert float(scorer(full)) == pytest.approx(float(plain(full)), abs=1e-4)  # no penalty at the unmasked level
    assert float(scorer(full) - scorer(quiet)) > 25.0
    assert "level_penalty" in scorer.describe()


def test_the_task_sets_its_method_defaults_under_the_users_flags(tmp_path):
    """The AV task's extremal defaults (2 areas x 100 iterations: minutes, not ten) apply where the user gave
    nothing; a flag, --set or a --config file wins."""
    import argparse

    from avxai.cli import method_config, task_defaults
    from avxai.methods import get_method
    from avxai.tasks import get_task

    task, method = get_task("av-enhancement"), get_method("extremal")

    def config(**given):
        args = argparse.Namespace(**{"areas": None, "window": None, "stride": None, "iterations": None,
                                     "batch_size": None, "seed": None, "set": [], "config": None, "quiet": True,
                                     **given})
        return task_defaults(task, method, method_config(method, args), args)

    assert (config().areas, config().iterations) == ((0.1, 0.3), 100)
    assert config(iterations=7).iterations == 7 and config(iterations=7).areas == (0.1, 0.3)
    assert config(set=["areas=[0.2]"]).iterations == 100 and config(set=["areas=[0.2]"]).areas == (0.2,)
    (tmp_path / "c.yaml").write_text("iterations: 40\n")
    assert config(config=str(tmp_path / "c.yaml")).iterations == 40
    assert task_defaults(get_task("enhancement"), method, method.config_class(), argparse.Namespace(
        set=[], config=None, **{k: None for k in ("areas", "window", "stride", "iterations", "batch_size", "seed")})
    ) == method.config_class()  # other tasks keep the method's own defaults


def test_default_occlusion_windows_grow_with_the_clip_not_with_the_grid():
    """A 4-s clip at defaults: 200 ms x 16 bins of the spectrogram (half-height hops) and 0.2 s x a quarter of the
    crop of the face video, 640 windows in all (was about 2,000 at 3.84 s: 143 s on a quiet machine)."""
    import math

    from avxai.methods.occlusion import window_starts
    from avxai.modalities.audio_visual import AVSpectrogram
    from avxai.modalities.video import FaceVideo

    spec = AVSpectrogram(0.1 * torch.randn(1, 1, 4 * 8000), 8000, n_fft=256, hop_length=80)
    video = FaceVideo(torch.rand(1, 100, 3, 64, 64), 25.0)
    counts = []
    for part in (spec, video):
        window, stride = part.occlusion_window()
        counts.append(math.prod(len(window_starts(n, w, s)) for n, w, s in zip(part.grid_shape, window, stride)))
    assert spec.occlusion_window() == ((16, 20), (8, 20)) and video.occlusion_window() == ((5, 16, 16), (5, 16, 16))
    assert counts == [16 * 21, 20 * 16]  # 129 bins x 401 frames; 100 frames of 64 x 64


def test_a_long_clip_scores_its_shares_one_copy_at_a_time(model, tmp_path, monkeypatch):
    """Above LONG_CLIP_SECONDS the four masked copies of the shares run one per pass (bounded memory), with the
    same result."""
    import sys

    path = write_clip(tmp_path / "clip.mp4", face_frames())
    opts = AVEnhancementOptions(input=path, stream="video", shares=True, track_cache=tmp_path / "cache")
    with pytest.warns(UserWarning, match="no --reference"):
        batched = build(model, opts).metadata["av_shares"]
    monkeypatch.setattr(sys.modules["avxai.tasks.av_enhancement"], "LONG_CLIP_SECONDS", 0.0)
    calls = []
    real = sys.modules["avxai.tasks.av_enhancement"].modality_shares
    monkeypatch.setattr(sys.modules["avxai.tasks.av_enhancement"], "modality_shares",
                        lambda *a, **k: calls.append(k.get("batch_size")) or real(*a, **k))
    with pytest.warns(UserWarning, match="no --reference"):
        one_by_one = build(model, opts).metadata["av_shares"]
    assert calls == [1]
    numbers = [k for k, v in batched.items() if isinstance(v, list) and all(isinstance(x, float) for x in v)]
    assert {"audio", "video", "unmasked"} <= set(numbers)
    for key in numbers:
        assert one_by_one[key] == pytest.approx(batched[key], abs=1e-4), key
