"""Face tracks from per-frame detections: shot cuts, one track per face, the chosen face, smooth crop boxes.

Pure numpy on boxes; :mod:`avxai.faces` runs the detector and cuts the crops.

1. :func:`shot_cuts`: a cut where consecutive frames' colour histograms and thumbnails differ far more than
   in the frames before (a frame-difference cut detector); tracks never cross a cut.
2. :func:`link_tracks`: within a shot, each detection continues the track whose last box is near it (centre
   within a distance that grows with the frames since, size within a factor of 1.5); a detection too far
   from every track (a jump) starts a new track instead of being handed to the nearest face.
3. :func:`choose_faces`: which track the crops follow in each frame: ``"largest"`` (default) takes in each shot
   the track with the largest median face among those found on at least a quarter of the shot's detection
   frames (:func:`largest_track`); ``N`` follows track ``N`` (tracks numbered by prominence over the clip, the
   sum of their box sides: large and present long, 0 first). Where the chosen face is not
   found, its nearest box is held and the frames are reported as undetected; it is never replaced by another
   face within a shot.
4. :func:`fill_and_smooth`: per segment (one track in one shot): interpolation between detections, a centred
   moving average, one crop size per segment (the median face), so a cut or a new face changes the framing at
   once, never by sliding across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Detections", "FaceChoice", "shot_cuts", "is_cut", "cut_scores", "frame_signature", "link_tracks", "choose_faces",
           "fill_and_smooth", "runs"]

#: a frame is a cut when its change score is above this and well above the recent frames' scores
CUT_THRESHOLD = 0.3
#: size ratio beyond which a detection is another face, not the same one moving
MAX_SIZE_RATIO = 1.5


@dataclass
class Detections:
    """Every confident face box on the frames the detector ran on, and the clip's shot cuts.

    Shape: frames ``(M,)`` frame index of each box; boxes ``(M, 4)`` x0, y0, x1, y1 in frame pixels;
    probs ``(M,)``; points ``(M, 5, 2)`` landmarks; detect_frames ``(D,)`` the frames the detector ran on;
    cuts: first frames of the shots after the first.
    """

    frames: np.ndarray
    boxes: np.ndarray
    probs: np.ndarray
    points: np.ndarray
    detect_frames: np.ndarray
    cuts: list[int]
    num_frames: int
    frame_size: tuple[int, int]

    def shot_of(self) -> np.ndarray:
        """Shot index of every frame. Shape: ``(num_frames,)`` int."""
        shot = np.zeros(self.num_frames, dtype=np.int64)
        for c in self.cuts:
            shot[c:] += 1
        return shot


def frame_signature(frames: np.ndarray) -> np.ndarray:
    """What :func:`shot_cuts` compares: a 16-bin histogram per colour channel (sums to 1 per channel) and a
    16 x 16 grey thumbnail in [0, 1], of each frame.

    Shape: ``(T, H, W, 3)`` uint8 -> ``(T, 3 * 16 + 256)`` float32.
    """
    t, h, w, _ = frames.shape
    sy, sx = max(1, h // 64), max(1, w // 64)  # histogram of a subsample: cheap, the same distribution
    sub = frames[:, ::sy, ::sx]
    hist = np.stack([np.stack([np.bincount(f[..., c].ravel() >> 4, minlength=16) for c in range(3)])
                     for f in sub]).astype(np.float32)
    hist /= hist.sum(axis=-1, keepdims=True)
    ys = (np.arange(16) * h // 16 + h // 32).clip(0, h - 1)
    xs = (np.arange(16) * w // 16 + w // 32).clip(0, w - 1)
    thumb = frames[:, ys][:, :, xs].mean(axis=-1) / 255.0
    return np.concatenate([hist.reshape(t, -1), thumb.reshape(t, -1)], axis=1).astype(np.float32)


def cut_scores(signatures: np.ndarray) -> np.ndarray:
    """Change between each frame and the one before, in [0, 1] (0 for the first frame): the larger of half the
    L1 distance of the colour histograms (averaged over channels) and twice the mean absolute thumbnail change.

    Shape: ``(T, F)`` -> ``(T,)``.
    """
    d = np.zeros(signatures.shape[0], dtype=np.float64)
    if signatures.shape[0] > 1:
        diff = np.abs(np.diff(signatures, axis=0))
        hist = diff[:, :48].sum(axis=1) / 6.0  # 3 channels, each L1 in [0, 2]
        thumb = diff[:, 48:].mean(axis=1) * 2.0
        d[1:] = np.maximum(hist, np.minimum(thumb, 1.0))
    return d


def is_cut(scores: "list[float] | np.ndarray", f: int, threshold: float = CUT_THRESHOLD, history: int = 12) -> bool:
    """Whether frame ``f`` starts a new shot: its change score (:func:`cut_scores`) is above ``threshold`` and
    above 3x the median of the ``history`` frames before plus 0.05 (camera motion and flicker raise every
    frame's score, a cut raises one)."""
    recent = np.asarray(scores[max(1, f - history):f], dtype=np.float64)
    base = float(np.median(recent)) if recent.size else 0.0
    return f > 0 and scores[f] > threshold and scores[f] > 3.0 * base + 0.05


def shot_cuts(signatures: np.ndarray, threshold: float = CUT_THRESHOLD) -> list[int]:
    """First frames of new shots (:func:`is_cut`). Shape: signatures ``(T, F)`` from :func:`frame_signature`."""
    d = cut_scores(signatures)
    return [t for t in range(1, d.shape[0]) if is_cut(d, t, threshold)]


def _side(box: np.ndarray) -> float:
    return max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)


def link_tracks(det: Detections, max_gap_frames: int = 50) -> np.ndarray:
    """Track id of every detection (see the module docstring); ids are ordered by prominence, 0 first.

    A track continues with a detection in the same shot whose centre is within
    ``side * (0.35 + 0.1 * (frames since its last box - 1))`` (at most 1.5 sides) of its last box and whose
    size is within a factor of :data:`MAX_SIZE_RATIO`; a track unseen for ``max_gap_frames`` ends.

    Shape: -> ``(M,)`` int64.
    """
    shot = det.shot_of()
    ids = np.full(det.frames.shape[0], -1, dtype=np.int64)
    active: list[tuple[int, int, np.ndarray]] = []  # (id, last frame, last box)
    next_id, current_shot = 0, -1
    for f in np.unique(det.frames):
        if shot[f] != current_shot:
            active, current_shot = [], shot[f]
        active = [a for a in active if f - a[1] <= max_gap_frames]
        rows = np.flatnonzero(det.frames == f)
        pairs = []
        for k, (tid, last_f, last_box) in enumerate(active):
            side = _side(last_box)
            reach = side * min(1.5, 0.35 + 0.1 * max(0, f - last_f - 1))
            c0 = (last_box[:2] + last_box[2:]) / 2
            for r in rows:
                b = det.boxes[r]
                dist = float(np.linalg.norm((b[:2] + b[2:]) / 2 - c0))
                ratio = _side(b) / side
                if dist <= reach and 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
                    pairs.append((dist / side, k, r))
        used_tracks, used_rows = set(), set()
        for _, k, r in sorted(pairs):
            if k in used_tracks or r in used_rows:
                continue
            used_tracks.add(k)
            used_rows.add(r)
            ids[r] = active[k][0]
            active[k] = (active[k][0], f, det.boxes[r])
        for r in rows:
            if r not in used_rows:
                ids[r] = next_id
                active.append((next_id, f, det.boxes[r]))
                next_id += 1
    # renumber by prominence: the sum of box sides over a track's detections, largest first
    sides = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1]) if ids.size else ids
    weight = np.bincount(ids, weights=sides, minlength=next_id) if ids.size else np.zeros(0)
    order = np.argsort(-weight, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[ids] if ids.size else ids


@dataclass
class FaceChoice:
    """Which face the crops follow, frame by frame.

    Shape: track ``(T,)`` the followed track id (-1 in a shot without any face); found ``(T,)`` True where
    the followed face was detected on that frame or lies between two of its detections in the same segment;
    row ``(T,)`` the detection row of the followed face on detected frames, else -1.
    """

    track: np.ndarray
    found: np.ndarray
    row: np.ndarray
    switches: list[dict]
    num_tracks: int


#: in a shot, ``"largest"`` considers only faces found on at least this share of the frames the detector ran on
MIN_PRESENCE = 0.25


def largest_track(ids: np.ndarray, sides: np.ndarray, detect_frames: int) -> int:
    """The track with the largest median face among those found on at least :data:`MIN_PRESENCE` of a shot's
    ``detect_frames`` (all tracks when none is): a face glimpsed on a few frames does not take the shot.

    Shape: ids, sides ``(M,)`` of the shot's detections.
    """
    tracks = np.unique(ids)
    counts = np.array([np.sum(ids == t) for t in tracks])
    medians = np.array([np.median(sides[ids == t]) for t in tracks])
    eligible = counts >= MIN_PRESENCE * max(detect_frames, 1)
    medians = np.where(eligible, medians, -1.0) if eligible.any() else medians
    return int(tracks[int(np.argmax(medians))])


def choose_faces(det: Detections, ids: np.ndarray, face: "str | int" = "largest", fps: float = 25.0) -> FaceChoice:
    """Which track to follow in each frame (see the module docstring). ``face``: ``"largest"`` or a track id.

    ``switches`` lists each frame where the followed track changes: ``{"frame", "time_s", "from", "to",
    "reason"}`` (``"shot cut"``).
    """
    n = det.num_frames
    shot = det.shot_of()
    num_tracks = int(ids.max()) + 1 if ids.size else 0
    if face != "largest":
        if isinstance(face, bool) or not isinstance(face, (int, np.integer)) or not 0 <= int(face) < num_tracks:
            raise ValueError(f"face {face!r} is not one of the clip's faces: it has {num_tracks} face track(s), "
                             f"numbered 0-{max(num_tracks - 1, 0)} from the most prominent (see the metadata "
                             "'face_tracks'); use --face largest or one of those numbers.")
    track = np.full(n, -1, dtype=np.int64)
    sides = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
    for s in range(int(shot.max()) + 1 if n else 0):
        in_shot = shot[det.frames] == s
        if face == "largest":
            if not in_shot.any():
                continue
            chosen = largest_track(ids[in_shot], sides[in_shot], int(np.sum(shot[det.detect_frames] == s)))
        else:
            chosen = int(face)
        track[shot == s] = chosen
    row = np.full(n, -1, dtype=np.int64)
    for r in range(det.frames.shape[0]):
        if ids[r] == track[det.frames[r]]:
            row[det.frames[r]] = r
    found = np.zeros(n, dtype=bool)
    det_set = np.zeros(n, dtype=bool)
    det_set[det.detect_frames] = True
    hit = row >= 0
    found[hit] = True
    # frames the detector skipped count as found when the detect frames on both sides (same shot) found the face
    last_hit, last_detect = -1, -1
    for f in range(n):
        if det_set[f]:
            if hit[f] and last_hit == last_detect and last_hit >= 0 and shot[last_hit] == shot[f]:
                found[last_hit:f] = True
            last_detect = f
            if hit[f]:
                last_hit = f
    switches = []
    for f in range(1, n):
        if track[f] != track[f - 1]:
            switches.append({"frame": f, "time_s": round(f / fps, 3), "from": int(track[f - 1]), "to": int(track[f]),
                             "reason": "shot cut" if shot[f] != shot[f - 1] else "new face"})
    return FaceChoice(track=track, found=found, row=row, switches=switches, num_tracks=num_tracks)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges where ``flags`` is True. Shape: ``(T,)`` bool."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0, edges padded with the end values. Shape: ``(T, ...)``."""
    if window <= 1 or x.shape[0] == 1:
        return x.copy()
    half = window // 2
    padded = np.pad(x, [(half, half)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    csum = np.cumsum(np.concatenate([np.zeros_like(padded[:1]), padded]), axis=0)
    return (csum[window:] - csum[:-window]) / window


def fill_and_smooth(det: Detections, choice: FaceChoice, *, margin: float, smoothing_frames: int,
                    anchor: str = "landmarks", fixed_size: bool = True) -> np.ndarray:
    """Square crop boxes for every frame, per segment (a run of frames following one track in one shot).

    Within a segment: the followed face's centre (eyes-and-nose landmarks, or the box centre) and size are
    interpolated between its detections (held before the first and after the last), smoothed by a centred
    moving average of ``smoothing_frames``, and sized by the segment's median face (``fixed_size``). A shot
    with no face holds the nearest segment's box. Side = face side ``* (1 + 2 * margin)``.

    Shape: -> ``(T, 4)`` float32 x0, y0, x1, y1 in frame pixels.
    """
    n = det.num_frames
    out = np.full((n, 4), np.nan, dtype=np.float64)
    shot = det.shot_of()
    seg_id = np.cumsum(np.concatenate([[0], (np.diff(choice.track) != 0) | (np.diff(shot) != 0)]))
    for s in np.unique(seg_id):
        frames = np.flatnonzero(seg_id == s)
        rows = choice.row[frames]
        have = rows >= 0
        if not have.any():
            continue
        d_frames, d_rows = frames[have], rows[have]
        raw = det.boxes[d_rows].astype(np.float64)
        centre = (raw[:, :2] + raw[:, 2:]) / 2
        pts = det.points[d_rows].astype(np.float64)
        ref = pts[:, :3].mean(axis=1) if anchor == "landmarks" else centre
        ok = np.isfinite(ref).all(axis=1)
        ref = np.where(ok[:, None], ref, centre)
        offset = np.median(centre - ref, axis=0)  # framed like the detector's box
        side = np.maximum(raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1])
        series = np.stack([np.interp(frames, d_frames, v) for v in (ref[:, 0], ref[:, 1], side)], axis=1)
        series = _moving_average(series, smoothing_frames)
        if fixed_size:
            series[:, 2] = np.median(side)
        half = series[:, 2] * (1.0 + 2.0 * margin) / 2.0
        cx, cy = series[:, 0] + offset[0], series[:, 1] + offset[1]
        out[frames] = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
    known = np.flatnonzero(np.isfinite(out[:, 0]))
    if known.size and known.size < n:  # frames of faceless shots: the nearest known box
        nearest = known[np.abs(np.arange(n)[:, None] - known[None]).argmin(axis=1)]
        out = out[nearest]
    return out.astype(np.float32)
