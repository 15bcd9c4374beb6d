"""The av-enhancement task in segments on a tiny generated clip: a time range of the clip (the face tracked once,
the crops, sound and reference sliced), and the segments stitched into the whole clip's joint grid."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from toys.clips import drifting_face_clip, tone

from avxai.methods import get_method
from avxai.models import load_model
from avxai.tasks import get_task
from avxai.tasks.av_enhancement import AVEnhancementOptions, build
from avxai.tasks.segmented import explain_in_segments

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model():
    return load_model("av-enhancer")  # 25 fps, 8 kHz mono, 64 px crops


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return drifting_face_clip(tmp_path_factory.mktemp("av") / "clip.mp4", 50)  # 2 s at 25 fps


def opts(clip, tmp_path, **kw):  # the detections cached beside the clip: MTCNN runs once for the module
    return AVEnhancementOptions(input=clip, shares=False, track_cache=clip.parent / "cache", **kw)


def test_a_time_range_slices_the_tracked_crops_the_sound_and_the_reference(model, clip, tmp_path):
    reference = tone(2.0)  # time-aligned with the clip's sound
    whole = build(model, opts(clip, tmp_path, reference=reference))
    part = build(model, opts(clip, tmp_path, reference=reference, start_s=0.4, end_s=1.2))
    assert part.modality.video.num_frames == 20 and whole.modality.video.num_frames == 50
    assert torch.equal(part.modality.video.crops, whole.modality.video.crops[:, 10:30])
    wav = whole.modality.spectrogram.waveform
    assert torch.equal(part.modality.spectrogram.waveform, wav[..., 3200:9600])  # 0.4-1.2 s at 8 kHz
    assert torch.equal(part.scorer.reference, reference.reshape(1, 1, -1)[..., 3200:9600])
    assert part.extras["frames"].shape == (20, 160, 240, 3) and torch.equal(part.extras["frames"][0],
                                                                          whole.extras["frames"][10])
    with pytest.raises(ValueError, match="at least two frames"):
        build(model, opts(clip, tmp_path, reference=reference, start_s=1.99, end_s=2.0))


def test_av_segments_stitch_into_the_whole_clips_joint_grid(model, clip, tmp_path):
    method = get_method("extremal")
    config = dataclasses.replace(method.config_class(), iterations=2, areas=(0.3,), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no reference: the task warns
        options = opts(clip, tmp_path)
        whole = build(model, options)
        e = explain_in_segments(get_task("av-enhancement"), model, options, method, config, seconds=1.0,
                                context_s=0.2, folder=tmp_path / "segments", whole=whole)
    meta = e.metadata["modality"]
    assert meta["parts"]["video"]["grid_shape"] == [50, 64, 64] and meta["parts"]["video"]["num_frames"] == 50
    audio_frames = 16000 // 80 + 1
    assert meta["parts"]["audio"]["grid_shape"] == [129, audio_frames]
    assert e.attribution.shape == (1, 129 * audio_frames + 50 * 64 * 64) == (1, sum(meta["part_sizes"]))
    assert e.masks.shape == (1, 1, e.attribution.shape[1])
    assert np.allclose(e.coordinates["video/time"], np.arange(50) / 25)
    assert e.metadata["segment_wise"]["count"] == 2 and e.metadata["segment_wise"]["failed"] == []
    assert e.media["original_audio"][1].shape[-1] == 16000 and e.media["original_video"][1].shape[1] == 50
    # the stitched video part is each segment's own cut at the centre of the overlap
    from avxai.explanation import Explanation, split_explanation

    second = split_explanation(Explanation.load(tmp_path / "segments" / "001"))["video"]  # 0.8-2.0 s explained
    assert torch.equal(split_explanation(e)["video"].masks[0, 0, 25:], second.masks[0, 0, 5:])
