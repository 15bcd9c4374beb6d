"""Segment-wise explanations of long inputs: spans, a known evidence span found through the stitched map,
finished segments reused by a rerun, a failing segment that loses none of the others, the automatic choice."""

import dataclasses

import numpy as np
import pytest
import torch
from toys.segments import RATE, ToneSpeaker, noise_with_tone

from avxai.explanation import Explanation
from avxai.memory import RowChunks
from avxai.methods import get_method
from avxai.methods.plan import auto_segment_seconds, plan_run
from avxai.tasks import get_task
from avxai.tasks.segmented import QUESTION, explain_in_segments
from avxai.tasks.stitch import segment_spans

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SPAN = (3.4, 4.2)  # seconds where the tone (the evidence) is


def occlusion_config():
    method = get_method("occlusion")
    return method, dataclasses.replace(method.config_class(), window=(257, 8), stride=(257, 4), progress=False)


def options(wav, **kw):
    return get_task("speaker").options_class(input=wav, sample_rate=RATE, **kw)


def test_spans_cover_the_input_with_context_and_a_short_tail_joins_the_last():
    spans = segment_spans(10.0, 3.0, 0.5, quantum_s=0.04)
    assert [(s.start_s, s.end_s) for s in spans] == [(0.0, 3.0), (3.0, 6.0), (6.0, 10.0)]  # 1 s tail joined
    # context on the 40 ms grid (video frames), never shorter than asked
    assert [(s.context_start_s, s.context_end_s) for s in spans] == [(0.0, 3.52), (2.48, 6.52), (5.48, 10.0)]
    assert [s.last for s in spans] == [False, False, True]
    with pytest.raises(ValueError, match="positive"):
        segment_spans(10.0, 0.0)


def test_the_stitched_map_finds_the_known_span_and_covers_the_whole_input(tmp_path):
    wav = noise_with_tone(6.0, SPAN)
    method, config = occlusion_config()
    e = explain_in_segments(get_task("speaker"), ToneSpeaker(), options(wav), method, config, seconds=2.0,
                            context_s=0.2, folder=tmp_path / "segments")
    frames = wav.shape[-1] // 128 + 1
    assert e.attribution.shape == (1, 257, frames) and e.grid.shape == (1, 257, frames)
    times = e.coordinates["time"]
    assert len(times) == frames and np.allclose(np.diff(times), 128 / RATE, atol=1e-6)  # one grid, no seam
    per_time = e.attribution[0].sum(dim=0).numpy()
    inside = (times >= SPAN[0]) & (times < SPAN[1])
    far = (times < SPAN[0] - 0.1) | (times > SPAN[1] + 0.1)  # beyond a window's reach of the span
    assert per_time[far].max() < 0.05 * np.median(per_time[inside])  # the evidence lies in the known span
    meta = e.metadata["segment_wise"]
    assert meta["count"] == 3 and meta["seconds"] == 2.0 and meta["overlap_s"] == pytest.approx(0.4)
    assert meta["question"] == QUESTION and meta["failed"] == []
    assert "class 0, predicted on the whole input" in meta["notes"][0]  # a class target is not sliced
    assert e.arrays["segment_unmasked"].shape == (1, 3)
    assert e.arrays["segment_unmasked"][0, 1] > 5 * e.arrays["segment_unmasked"][0, 0]  # the tone's segment
    assert e.media["original"][1].shape[-1] == wav.shape[-1]
    out = e.save(tmp_path / "stitched")  # saved and plotted as any explanation
    assert (out / "figure.png").exists()
    back = Explanation.load(out)
    assert back.metadata["segment_wise"]["count"] == 3 and torch.equal(back.attribution, e.attribution)


def test_a_rerun_reuses_finished_segments_and_a_failed_one_loses_none_of_the_others(tmp_path):
    wav = noise_with_tone(6.0, SPAN)
    wav[0, int(2.5 * RATE)] = 5.0  # a spike in the second segment: the toy fails there
    method, config = occlusion_config()
    task, folder = get_task("speaker"), tmp_path / "segments"
    first = explain_in_segments(task, ToneSpeaker(fail_above=2.0), options(wav, target=0), method, config,
                                seconds=2.0, context_s=0.2, folder=folder)
    meta = first.metadata["segment_wise"]
    assert [s["status"] for s in meta["segments"]] == ["explained", "failed", "explained"]
    assert "the toy fails on a spike" in meta["failed"][0]["error"]
    assert (folder / "000" / "explanation.json").exists() and not (folder / "001").exists()
    times = first.coordinates["time"]
    assert first.attribution.shape[-1] == wav.shape[-1] // 128 + 1 == len(times)  # the gap keeps the time axis
    gap = (times >= 2.0) & (times < 4.0)
    assert float(first.attribution[0][:, gap].abs().sum()) == 0.0
    assert torch.isnan(first.arrays["segment_unmasked"][0, 1])
    # the rerun (the cause fixed) explains only the failed segment
    again = explain_in_segments(task, ToneSpeaker(), options(wav, target=0), method, config, seconds=2.0,
                                context_s=0.2, folder=folder)
    assert [s["status"] for s in again.metadata["segment_wise"]["segments"]] == ["reused", "explained", "reused"]
    assert torch.equal(again.attribution[0][:, ~gap], first.attribution[0][:, ~gap])
    # other settings: nothing reused
    other = dataclasses.replace(config, stride=(257, 8))
    third = explain_in_segments(task, ToneSpeaker(), options(wav, target=0), method, other, seconds=2.0,
                                context_s=0.2, folder=folder)
    assert {s["status"] for s in third.metadata["segment_wise"]["segments"]} == {"explained"}


def test_every_segment_failing_is_one_error(tmp_path):
    wav = noise_with_tone(4.0, SPAN) * 200  # above the toy's limit everywhere
    method, config = occlusion_config()
    with pytest.raises(ValueError, match="every segment failed; the first: .*the toy fails on a spike"):
        explain_in_segments(get_task("speaker"), ToneSpeaker(fail_above=2.0), options(wav, target=0), method, config,
                            seconds=2.0, folder=tmp_path)


def test_the_automatic_length_follows_the_budget():
    method = get_method("extremal")
    config = dataclasses.replace(method.config_class(), mask_axes=("time",))
    problem = get_task("speaker").build(ToneSpeaker(), options(noise_with_tone(8.0, SPAN)))
    _, plan = plan_run(method, problem.model, problem.modality, config, budget=1 << 20)
    assert plan.row_bytes > 1 << 20  # one row of the whole 8 s does not fit 1 MiB
    seconds = auto_segment_seconds(plan, 8.0)
    per_second = plan.row_bytes / 8.0
    assert seconds is not None and seconds * per_second <= 1 << 20 < 2 * seconds * per_second + per_second
    _, roomy = plan_run(method, problem.model, problem.modality, config, budget=1 << 30)
    assert auto_segment_seconds(roomy, 8.0) is None  # it fits: the whole input
    assert RowChunks  # the chunked rows remain the answer when one row fits but all do not


def test_a_time_aligned_reference_is_sliced_with_the_input_and_segments_start_on_stft_frames(tmp_path):
    from toys.separation import HOP, SR, BandSplit, tones

    low = tones([(300, 0.5), (600, 0.25)], seconds=3.0)
    high = tones([(2000, 0.2), (2600, 0.1)], seconds=3.0, seed=1)
    floor = 0.01 * torch.randn(low.shape, generator=torch.Generator().manual_seed(2))
    mixture, sources = (low + high + floor).view(1, 1, -1), torch.stack([low, high], dim=1)
    task = get_task("separation")
    opts = task.options_class(input=mixture[0], sample_rate=SR, reference=sources[0], source=1)
    method = get_method("occlusion")
    config = dataclasses.replace(method.config_class(), window=(16, 25), stride=(16, 25), progress=False)
    e = explain_in_segments(task, BandSplit(), opts, method, config, seconds=1.0, context_s=0.1,
                            folder=tmp_path)  # 0.1 s is 12.5 hops: the context is rounded out to whole frames
    assert e.attribution.shape[-1] == mixture.shape[-1] // HOP + 1  # the whole input's frames, none lost
    assert [s["context_start_s"] for s in e.metadata["segment_wise"]["segments"]] == [0.0, 0.896, 1.896]
    assert (e.arrays["segment_unmasked"] > 20).all()  # each segment scored against its own part of the reference
    per_freq = e.attribution[0].clamp(min=0).sum(dim=1)
    cutoff_bin = int(1000 / (SR / 256))
    assert per_freq[cutoff_bin + 2:].sum() > 0.9 * per_freq.sum()  # source 2 lives above the split
