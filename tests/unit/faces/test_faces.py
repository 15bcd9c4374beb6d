"""Face detection and tracking on generated talking faces, where the true face and mouth boxes are known."""

import math

import numpy as np
import pytest
import torch

from avxai.data.talking_face import TalkingFace
from avxai.faces import FaceTracker, paste_back


def am_speech(seconds=1.0, sample_rate=16000, syllables_hz=3.0):
    """A tone whose loudness rises and falls like syllables."""
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    envelope = torch.sin(math.pi * syllables_hz * t) ** 2
    return (0.5 * envelope * torch.sin(2 * math.pi * 220 * t))[None].float()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def clip():
    return TalkingFace(face="astronaut", size=(128, 128), seed=3, head_motion_px=3.0).render(am_speech(), 16000)


@pytest.fixture(scope="module")
def tracker():
    return FaceTracker(crop_size=64)


@pytest.fixture(scope="module")
def track(clip, tracker):
    return tracker.track(clip.frames, "astronaut-test")


def centres(boxes):
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def test_face_found_in_every_frame_where_it_is(clip, track):
    assert track.detection_rate == 1.0
    assert track.boxes.shape == (clip.num_frames, 4) and track.crops.shape == (clip.num_frames, 3, 64, 64)
    assert 0.0 <= float(track.crops.min()) and float(track.crops.max()) <= 1.0
    # MTCNN's tight box agrees with the generator's face box (same detector on the still, moved with the head)
    err = (track.raw_boxes - clip.face_boxes).abs()
    assert float(err[:, :3].mean()) < 4.0, "left/top/right edges should be within a few pixels"
    # the crop box holds the whole mouth in every frame
    b, m = track.boxes, clip.mouth_boxes
    assert bool(((m[:, :2] >= b[:, :2]) & (m[:, 2:] <= b[:, 2:])).all())


def test_boxes_are_smooth(track):
    raw, smooth = centres(track.raw_boxes), centres(track.boxes)
    side = float((track.boxes[:, 2] - track.boxes[:, 0]).mean())
    steps = (smooth[1:] - smooth[:-1]).norm(dim=1)
    assert float(steps.max()) < 0.02 * side, f"centre jumps {float(steps.max()):.2f} px between frames"
    jerk_raw = (raw[2:] - 2 * raw[1:-1] + raw[:-2]).norm(dim=1).mean()
    jerk_smooth = (smooth[2:] - 2 * smooth[1:-1] + smooth[:-2]).norm(dim=1).mean()
    assert jerk_smooth < 0.5 * jerk_raw, "smoothing should remove most frame-to-frame jitter"


def test_crop_framing_does_not_follow_the_speech(clip, track):
    """The jaw drop stretches MTCNN's box; the crop (eyes and nose, one size) must not shift with it."""
    openness = clip.openness.double()
    true_centre = centres(clip.face_boxes).double()  # moves with the head only
    box_residual = centres(track.raw_boxes).double()[:, 1] - true_centre[:, 1]
    crop_residual = centres(track.boxes).double()[:, 1] - true_centre[:, 1]
    corr = lambda a, b: float(torch.corrcoef(torch.stack([a, b]))[0, 1])  # noqa: E731
    assert corr(box_residual, openness) > 0.8, "premise: the MTCNN box centre moves down as the mouth opens"
    assert float(crop_residual.max() - crop_residual.min()) < 2.0  # the box centre moves ~5 px here
    sides = track.boxes[:, 2] - track.boxes[:, 0]
    assert float(sides.max() - sides.min()) < 1e-3


def test_crops_follow_the_moving_mouth(clip, track):
    """Crop pixels that change over time, pasted back into the frame, lie where the animation changed pixels."""
    motion = track.crops.std(dim=0).mean(dim=0)  # (S, S): temporal std per crop pixel
    hot = (motion >= torch.quantile(motion.flatten(), 0.98)).float()
    pasted = paste_back(hot.expand(clip.num_frames, -1, -1), track, clip.frames) > 0.5
    changed = clip.mouth_masks.any(dim=0)
    changed = torch.nn.functional.max_pool2d(changed[None, None].float(), 7, 1, 3)[0, 0] > 0  # +-3 px (head motion)
    for t in (0, clip.num_frames // 2, clip.num_frames - 1):
        assert float((pasted[t] & changed).sum()) > 0.9 * float(pasted[t].sum())


class Blind(FaceTracker):
    """MTCNN that sees nothing on frames marked by a pixel (0, 0) of value (1, 2, 3): a face it misses."""

    def detect_batch(self, frames, frame_size=None):
        found = super().detect_batch(frames, frame_size)
        marked = (frames[:, 0, 0] == torch.tensor([1, 2, 3], dtype=torch.uint8)).all(dim=1)
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        return [empty if m else f for f, m in zip(found, marked.tolist())]


def test_missed_frames_are_filled_from_neighbours_and_reported(clip, track):
    frames = clip.frames.clone()
    frames[8:13, 0, 0] = torch.tensor([1, 2, 3], dtype=torch.uint8)  # the detector misses the face there
    exact = Blind(crop_size=32, smoothing_frames=1, margin=0.0, anchor="box", fixed_size=False)
    with pytest.warns(UserWarning, match=r"blanked: the followed face \(--face largest\) is not found in 5 frame"):
        filled = exact.track(frames, "blanked")
    assert not bool(filled.detected[8:13].any()) and bool(filled.detected[:8].all()) and bool(filled.detected[13:].all())
    assert filled.report["undetected"][0]["start"] == 8 and filled.report["undetected"][0]["end"] == 13
    assert filled.report["shots"] == [0] and filled.report["switches"] == []
    raw = filled.raw_boxes.double()
    c = centres(raw)
    side = torch.maximum(raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1])
    for t in range(8, 13):
        w = (t - 7) / 6.0  # linear between frames 7 and 13
        cx, cy = (1 - w) * c[7] + w * c[13]
        s = (1 - w) * side[7] + w * side[13]
        expected = torch.tensor([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2])
        assert torch.allclose(filled.boxes[t].double(), expected, atol=1e-3)
    # with the default tracker, the filled boxes stay close to those found when nothing was missed
    with pytest.warns(UserWarning, match="not found in 5 frame"):
        default = Blind(crop_size=64).track(frames, "blanked")
    gap = (default.boxes[8:13] - track.boxes[8:13]).abs().max()
    assert float(gap) < 3.0, f"filled boxes are {float(gap):.1f} px from the boxes of the intact clip"


def test_a_faceless_shot_holds_the_nearest_box_and_detect_every(clip):
    frames = clip.frames[:12].clone()
    frames[:3] = 128  # a grey shot, then a cut to the face at frame 3
    with pytest.warns(UserWarning, match=r"not found in 3 frame"):
        track = FaceTracker(crop_size=32, smoothing_frames=1, detect_every=2).track(frames, "ends")
    assert track.report["shots"] == [0, 3]
    # MTCNN ran on frames 0 and 2 (every 2nd of the first shot, and its last), then 3, 5, 7, 9 and the last, 11
    assert track.report["frames_detected_on"] == 7
    assert track.detected.tolist() == [False] * 3 + [i % 2 == 1 for i in range(3, 11)] + [True]
    assert torch.allclose(track.boxes[0], track.boxes[3]) and torch.allclose(track.boxes[2], track.boxes[3])


def test_no_face_raises_with_the_name():
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8))
    grey = torch.full((3, 96, 96, 3), 128, dtype=torch.uint8)
    tracker = FaceTracker()
    for frames, name in ((noise, "noise.mp4"), (grey, "grey.mp4")):
        with pytest.raises(ValueError, match=rf"no face found in {name}: MTCNN detected no face in any of {len(frames)} frames"):
            tracker.track(frames, name)


def test_paste_back_places_the_map_inside_the_box(track):
    n = track.num_frames
    height, width = track.frame_size
    pasted = paste_back(torch.ones(n, 16, 16), track)
    assert pasted.shape == (n, height, width)
    for t in (0, n // 2, n - 1):
        x0, y0, x1, y1 = track.boxes[t].tolist()
        ys, xs = torch.nonzero(pasted[t] > 0, as_tuple=True)
        assert float(xs.min()) >= math.floor(x0) and float(xs.max()) <= math.ceil(x1)
        assert float(ys.min()) >= math.floor(y0) and float(ys.max()) <= math.ceil(y1)
        area = (min(x1, width) - max(x0, 0)) * (min(y1, height) - max(y0, 0))
        assert abs(float(pasted[t].sum()) - area) < 2 * (x1 - x0 + y1 - y0)  # up to one pixel row per edge
    # a hot spot in the crop's top-left quadrant lands in the box's top-left quadrant
    hm = torch.zeros(n, 16, 16)
    hm[:, 3, 4] = 1.0
    pasted = paste_back(hm, track)
    y, x = np.unravel_index(int(pasted[0].argmax()), (height, width))
    x0, y0, x1, y1 = track.boxes[0].tolist()
    assert x == pytest.approx(x0 + 4.5 / 16 * (x1 - x0), abs=1.5)
    assert y == pytest.approx(y0 + 3.5 / 16 * (y1 - y0), abs=1.5)


def test_bad_input_is_rejected(track):
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        FaceTracker().track(torch.rand(2, 3, 32, 32), "float.mp4")
    with pytest.raises(ValueError, match="smoothing_frames must be an odd"):
        FaceTracker(smoothing_frames=4)
    with pytest.raises(ValueError, match="heatmap"):
        paste_back(torch.ones(track.num_frames + 1, 8, 8), track)


def test_a_face_in_few_frames_warns(monkeypatch):
    tracker = FaceTracker(crop_size=16)
    frames = torch.zeros(10, 64, 64, 3, dtype=torch.uint8)
    box = np.array([[10.0, 10.0, 40.0, 40.0]], np.float32)
    points = np.array([[[20.0, 20.0], [30.0, 20.0], [25.0, 25.0], [21.0, 32.0], [29.0, 32.0]]], np.float32)
    calls = []

    def first_frame_only(self, chunk, frame_size=None):  # MTCNN finds a face in the first frame only
        calls.append(chunk.shape[0])
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        return [(box, np.array([0.99], np.float32), points) if len(calls) == 1 and i == 0 else empty
                for i in range(chunk.shape[0])]

    monkeypatch.setattr(FaceTracker, "detect_batch", first_frame_only)
    with pytest.warns(UserWarning, match=r"clip\.mp4: a face was found in only 10% of the 10 frames"):
        track = tracker.track(frames, "clip.mp4")
    assert track.crops.shape == (10, 3, 16, 16)
