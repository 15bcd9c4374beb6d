"""Gradient methods in segments: Grad-CAM on the AV task (each stream's map normalised once over the whole clip,
the segments joined in raw units), and integrated gradients' completeness kept per segment."""

import dataclasses
import warnings

import pytest
import torch
from toys.clips import drifting_face_clip, tone
from toys.segments import RATE, ToneSpeaker, noise_with_tone

from avxai.explanation import Explanation, split_explanation
from avxai.methods import get_method
from avxai.models import load_model
from avxai.tasks import get_task
from avxai.tasks.av_enhancement import AVEnhancementOptions, build
from avxai.tasks.segmented import explain_in_segments

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return drifting_face_clip(tmp_path_factory.mktemp("av") / "clip.mp4", 50)  # 2 s at 25 fps


def test_gradcam_av_segments_are_joined_raw_and_normalised_once(clip, tmp_path):
    model = load_model("av-enhancer")
    # with a reference (without one the score is the output against itself: 100 dB, no gradient at all)
    options = AVEnhancementOptions(input=clip, shares=False, track_cache=clip.parent / "cache", reference=tone(2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = build(model, options)
        e = explain_in_segments(get_task("av-enhancement"), model, options, get_method("gradcam"),
                                get_method("gradcam").config_class(), seconds=1.0, context_s=0.2,
                                folder=tmp_path / "segments", whole=whole)
    parts = split_explanation(e)
    segs = [Explanation.load(tmp_path / "segments" / f"00{i}") for i in (0, 1)]
    for name in ("audio", "video"):
        stitched = parts[name].attribution
        assert stitched.abs().max().item() == pytest.approx(1.0)  # normalised once, over the whole clip
        raw = [s.metadata["part_max"][name][0] for s in segs]
        assert 0 < e.metadata["part_max"][name][0] <= max(raw) * (1 + 1e-5)  # the context cells are cut away
        # the second segment's cells (explained 0.8-2.0 s) in the stitched map: its raw map / the whole's maximum
        if name == "video":
            own = split_explanation(segs[1])["video"].attribution[0, 5:] * raw[1]
            torch.testing.assert_close(stitched[0, 25:], own / e.metadata["part_max"]["video"][0], rtol=1e-5,
                                       atol=1e-6)
    assert "over the whole input" in e.metadata["normalised"]
    assert [s["part_max"]["video"][0] for s in e.metadata["segment_wise"]["segments"]] == pytest.approx(
        [s.metadata["part_max"]["video"][0] for s in segs])


def test_integrated_gradients_completeness_is_kept_per_segment(tmp_path):
    method = get_method("integrated-gradients")
    config = dataclasses.replace(method.config_class(), steps=4)
    task = get_task("speaker")
    options = task.options_class(input=noise_with_tone(3.0, (1.2, 1.8)), sample_rate=RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a coarse path: the completeness warning
        e = explain_in_segments(task, ToneSpeaker(), options, method, config, seconds=1.0, context_s=0.1,
                                folder=tmp_path / "segments")
    records = e.metadata["segment_wise"]["segments"]
    assert len(records) == 3 and all(len(r["completeness"]["score_1"]) == 1 for r in records)
    assert e.metadata["completeness"] == "per segment: segment_wise.segments[i].completeness"
    assert e.metadata["batch_size"] == 5  # planned on the first segment from the budget: all 5 path points
