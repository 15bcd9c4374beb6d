"""The tracker keeps the right person and says when it cannot: generated clips of real face photographs
(tests/toys/clips.py) with known positions, cuts between two faces, a face leaving the frame while another stays."""

import numpy as np
import pytest
import torch

from avxai.faces import FaceTracker
from avxai.tracking import Detections, choose_faces, link_tracks, runs
from toys.clips import render

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SIZE = (160, 240)


def centre_x(boxes):
    return ((boxes[:, 0] + boxes[:, 2]) / 2).numpy()


def test_a_cut_between_two_faces_splits_the_track_and_sizes_each_shot():
    n = 30
    hero = np.tile([[30.0, 30.0, 70.0]], (n, 1))
    hero[:, 0] += np.arange(n)  # moves right 1 px a frame
    other = np.full((n, 3), np.nan)
    other[15:] = [120.0, 20.0, 100.0]  # after the cut: another person, larger, elsewhere
    hero[15:] = np.nan
    bystander = np.tile([[180.0, 90.0, 44.0]], (n, 1))  # small, in the background of both shots
    frames = render(n, SIZE, [("astronaut", hero), ("camera", other), ("astronaut", bystander)],
                    shades=np.array([0] * 15 + [1] * 15))
    det = FaceTracker(crop_size=32).detect_stream([frames], "cut.mp4")  # detected once, followed three ways below
    track = FaceTracker(crop_size=32).make_track(det, None, [frames], "cut.mp4")
    report = track.report
    assert report["shots"] == [0, 15]
    assert [(s["frame"], s["reason"]) for s in report["switches"]] == [(15, "shot cut")]
    assert report["undetected"] == [] and track.detection_rate == 1.0
    # each shot follows its own main face: no box slides across the cut, none sits on the bystander
    hero_x = hero[:15, 0] + 35
    assert np.abs(centre_x(track.boxes[:15]) - hero_x).max() < 6
    assert np.abs(centre_x(track.boxes[15:]) - 170).max() < 6
    sides = (track.boxes[:, 2] - track.boxes[:, 0]).numpy()
    assert np.ptp(sides[:15]) < 1e-3 and np.ptp(sides[15:]) < 1e-3  # one crop size per shot ...
    assert sides[15] > 1.3 * sides[0]  # ... and its own: the larger face of shot 2 fits its crop
    # the faces are listed, most prominent first; --face N follows one of them and reports where it is missing
    tracks = report["face_tracks"]
    assert len(tracks) == 4 and tracks[0]["median_side_px"] > tracks[-1]["median_side_px"]
    bystander_ids = [t["id"] for t in tracks if t["median_side_px"] < 40]
    assert len(bystander_ids) == 2  # one track per shot: tracks never cross a cut
    first = min(bystander_ids, key=lambda i: tracks[i]["first_frame"])
    with pytest.warns(UserWarning, match=r"\(--face \d\) is not found in 15 frame"):
        small = FaceTracker(crop_size=32, face=first).make_track(det, None, [frames], "cut.mp4")
    assert np.abs(centre_x(small.boxes[:15]) - 202).max() < 6 and small.report["undetected"][0]["start"] == 15
    with pytest.raises(ValueError, match="face 9 is not one of the clip's faces: it has 4"):
        FaceTracker(crop_size=32, face=9).follow(det, "cut.mp4")


def test_a_face_leaving_the_frame_is_not_handed_to_the_bystander():
    n = 30
    hero = np.tile([[20.0, 30.0, 80.0]], (n, 1))
    hero[10:, 0] -= 12.0 * np.arange(1, n - 9)  # pans out of the frame to the left from frame 10
    bystander = np.tile([[170.0, 60.0, 48.0]], (n, 1))
    frames = render(n, SIZE, [("astronaut", hero), ("camera", bystander)])
    with pytest.warns(UserWarning, match=r"leave\.mp4: .*the followed face \(--face largest\) is not found in"):
        track = FaceTracker(crop_size=32).track(frames, "leave.mp4")
    report = track.report
    assert report["shots"] == [0] and report["switches"] == []
    lost = report["undetected"]
    assert len(lost) == 1 and 10 < lost[0]["start"] < 20 and lost[0]["end"] == n
    assert report["detection_rate"] < 0.75  # the frames without the face count as missed, not as found
    # the crops never move onto the bystander (the old tracker jumped 150 px to them)
    assert centre_x(track.boxes).max() < 100


def detections(rows, n, cuts=()):
    """Detections from (frame, x0, y0, side) rows."""
    rows = np.asarray(rows, np.float32)
    boxes = np.stack([rows[:, 1], rows[:, 2], rows[:, 1] + rows[:, 3], rows[:, 2] + rows[:, 3]], axis=1)
    return Detections(frames=rows[:, 0].astype(np.int64), boxes=boxes, probs=np.ones(len(rows), np.float32),
                      points=np.full((len(rows), 5, 2), np.nan, np.float32),
                      detect_frames=np.arange(n), cuts=list(cuts), num_frames=n, frame_size=(200, 300))


def test_linking_splits_at_jumps_size_changes_and_cuts():
    # frames 0-3: one face at x = 10; frame 4: the only face is 150 px away (a jump): a new track, not the same
    rows = [(f, 10 + f, 20, 50) for f in range(4)] + [(4, 160, 20, 50)]
    ids = link_tracks(detections(rows, 5))
    assert len(set(ids[:4].tolist())) == 1 and ids[4] != ids[0]
    # the same place but twice the size: another face (a person closer to the camera)
    ids = link_tracks(detections([(0, 10, 20, 40), (1, 10, 20, 80)], 2))
    assert ids[0] != ids[1]
    # a cut between frames 1 and 2 ends every track even where the next face sits at the same place
    det = detections([(0, 10, 20, 50), (1, 10, 20, 50), (2, 11, 20, 50)], 3, cuts=[2])
    ids = link_tracks(det)
    assert ids[0] == ids[1] != ids[2]
    choice = choose_faces(det, ids, "largest")
    assert [s["reason"] for s in choice.switches] == ["shot cut"] and choice.found.all()
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]


def test_largest_means_the_face_with_most_presence_in_each_shot():
    # a large face seen on 2 frames against a smaller one seen on all 10: the smaller one is followed
    rows = [(f, 10, 10, 30) for f in range(10)] + [(0, 200, 10, 45), (1, 200, 10, 45)]
    det = detections(rows, 10)
    ids = link_tracks(det)
    choice = choose_faces(det, ids, "largest")
    assert set(choice.track.tolist()) == {ids[0]} and choice.switches == []
    assert torch.tensor(choice.found).all()
