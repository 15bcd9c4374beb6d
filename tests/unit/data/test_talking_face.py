"""The talking-face generator: the mouth follows the speech loudness, and only the mouth region changes."""

import math

import numpy as np
import pytest
import torch

from avxai.data.talking_face import TalkingFace, speech_envelope, write_talking_face
from avxai.faces import FaceTracker
from avxai.io import check_av_alignment, read_video

SR = 16000


def am_speech(seconds=1.0, syllables_hz=3.0, sample_rate=SR):
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    envelope = torch.sin(math.pi * syllables_hz * t) ** 2
    return (0.5 * envelope * torch.sin(2 * math.pi * 220 * t))[None].float()


def reference_envelope(wav, fps=25, sample_rate=SR):
    """RMS per video frame, written independently with numpy."""
    x = wav[0].numpy().astype(np.float64)
    hop = sample_rate // fps
    return np.sqrt((x[: len(x) // hop * hop].reshape(-1, hop) ** 2).mean(1))


def dark_pixels(clip):
    """Per frame: pixels in the mouth box darker than the darkest 2% of the face skin (the open mouth)."""
    grey = clip.frames.float().mean(-1)
    counts = []
    for t in range(clip.num_frames):
        x0, y0, x1, y1 = clip.mouth_boxes[t].round().int().tolist()
        counts.append(float((grey[t, y0:y1, x0:x1] < 60).sum()))
    return np.array(counts)


pytestmark = pytest.mark.usefixtures("one_thread")  # rendering runs faster on one thread (tests/conftest.py)


@pytest.mark.parametrize("face", ["astronaut", "camera"])
def test_mouth_opening_follows_the_speech_envelope(face):
    speech = am_speech(1.2)
    clip = TalkingFace(face=face, size=(128, 128), seed=0).render(speech, SR)
    assert clip.frames.shape == (30, 128, 128, 3) and clip.frames.dtype == torch.uint8 and clip.fps == 25.0
    env = reference_envelope(speech)
    assert np.allclose(speech_envelope(speech, SR, 25).numpy(), env, atol=1e-5)
    heights = (clip.mouth_boxes[:, 3] - clip.mouth_boxes[:, 1]).numpy()
    assert np.corrcoef(heights, env)[0, 1] > 0.9
    assert np.corrcoef(dark_pixels(clip), env)[0, 1] > 0.9, "the dark open mouth (pixels) follows the loudness"
    assert float(clip.openness.min()) < 0.1 and float(clip.openness.max()) == 1.0  # closed between syllables


def test_mouth_box_inside_the_face_mtcnn_finds():
    clip = TalkingFace(face="astronaut", size=(128, 128), seed=1).render(am_speech(0.6), SR)
    boxes, landmarks, probs = FaceTracker().detect(clip.frames, "generated")
    assert bool((~torch.isnan(probs)).all()), "MTCNN finds the face in every generated frame"
    m = clip.mouth_boxes
    assert bool(((m[:, :2] >= boxes[:, :2]) & (m[:, 2:] <= boxes[:, 2:])).all())
    face_mid = (boxes[:, 1] + boxes[:, 3]) / 2
    assert bool((m[:, 1] > face_mid).all()), "the mouth is in the lower half of the face"
    # MTCNN's mouth corners fall inside the generated mouth box (2 px tolerance)
    corners = landmarks[:, 3:]
    assert bool(((corners[..., 0] >= m[:, None, 0] - 2) & (corners[..., 0] <= m[:, None, 2] + 2)).all())
    assert bool(((corners[..., 1] >= m[:, None, 1] - 2) & (corners[..., 1] <= m[:, None, 3] + 2)).all())


def test_only_the_mouth_region_changes_without_head_motion():
    speech = am_speech(0.8)
    clip = TalkingFace(face="astronaut", size=(96, 96), head_motion_px=0.0).render(speech, SR)
    still = int(clip.openness.argmin())
    diff = (clip.frames != clip.frames[still]).any(-1)  # (T, H, W)
    assert float(diff.float().mean()) > 0.02
    masks = clip.mouth_masks | clip.mouth_masks[still]
    assert not bool((diff & ~masks).any()), "pixels outside the mouth/jaw mask changed"
    assert float(clip.mouth_masks.float().mean()) < 0.2
    # the mask lies in the lower half of the face, around the mouth box
    rows = torch.nonzero(clip.mouth_masks.any(0).any(1)).flatten()
    assert float(rows.min()) >= float(clip.face_boxes[0, 1] + clip.face_boxes[0, 3]) / 2


def test_silence_keeps_the_mouth_closed():
    clip = TalkingFace(face="camera", size=(64, 64), head_motion_px=0.0).render(torch.zeros(1, 8000), SR)
    assert float(clip.openness.abs().max()) == 0.0
    assert bool((clip.frames == clip.frames[0]).all())


def test_deterministic_under_seed_and_motion_is_smooth():
    speech = am_speech(0.6)
    a = TalkingFace(face="camera", size=(64, 64), seed=7).render(speech, SR)
    b = TalkingFace(face="camera", size=(64, 64), seed=7).render(speech, SR)
    c = TalkingFace(face="camera", size=(64, 64), seed=8).render(speech, SR)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.mouth_boxes, b.mouth_boxes)
    assert not torch.equal(a.frames, c.frames) and torch.equal(a.openness, c.openness)
    motion = TalkingFace(seed=7, head_motion_px=3.0).head_motion(50, 25.0)
    assert float(motion.abs().max()) <= 3.0 + 1e-6
    assert float((motion[1:] - motion[:-1]).abs().max()) <= 3.0 * 2 * math.pi * 0.9 / 25, "at most 0.9 Hz: sub-pixel steps"
    # the face box moves with the head motion
    shift = a.face_boxes - a.face_boxes[0]
    assert torch.allclose(shift[:, :2], shift[:, 2:], atol=1e-4)


def test_write_talking_face_round_trip(tmp_path):
    speech = am_speech(0.8)
    clip = TalkingFace(face="camera", size=(64, 64)).render(speech, SR)
    path = tmp_path / "talking.mp4"
    write_talking_face(path, clip)
    back = read_video(path, need_audio=True)
    assert back.num_frames == clip.num_frames == 20 and back.fps == 25.0
    assert back.sample_rate == SR and back.audio.shape == speech.shape
    check_av_alignment(back.num_frames, back.fps, back.audio.shape[1], back.sample_rate)
    assert float((back.frames.float() - clip.frames.float()).abs().mean()) < 3.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="face must be one of"):
        TalkingFace(face="lena")
    with pytest.raises(ValueError, match="even integers"):
        TalkingFace(size=(127, 128))
    with pytest.raises(ValueError, match="speech must be"):
        TalkingFace(size=(64, 64)).render(torch.zeros(2, 1, 100), SR)
