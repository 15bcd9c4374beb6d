"""The face track of a video file for the av-enhancement task: detections cached per clip and tracker settings,
the crops cut in a second streaming pass (never holding all the frames)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from avxai.faces import FaceTrack, FaceTracker
from avxai.io.video_stream import iter_frames, probe_video
from avxai.tracking import Detections

__all__ = ["cache_file", "track_file"]


def cache_file(path: str | Path, tracker: FaceTracker, fps: float | None, folder: str | Path | None) -> Path | None:
    """Where the detections of ``path`` with ``tracker``'s settings are cached: ``FOLDER/<sha256>.npz``, the hash
    of the file's bytes, the settings and the frame-rate conversion; ``None`` when caching is off."""
    if str(folder) == "off":
        return None
    folder = Path(folder) if folder is not None else Path(
        os.environ.get("AVXAI_CACHE_DIR") or Path.home() / ".cache" / "avxai") / "tracks"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps({**tracker.settings(), "fps": fps, "version": 1}, sort_keys=True).encode())
    return folder / f"{digest.hexdigest()[:32]}.npz"


def _load_detections(file: Path | None) -> Detections | None:
    if file is None or not file.exists():
        return None
    try:
        with np.load(file) as z:
            return Detections(frames=z["frames"], boxes=z["boxes"], probs=z["probs"], points=z["points"],
                              detect_frames=z["detect_frames"], cuts=z["cuts"].tolist(),
                              num_frames=int(z["num_frames"]), frame_size=tuple(int(v) for v in z["frame_size"]))
    except (OSError, KeyError, ValueError) as err:
        warnings.warn(f"ignoring the unreadable cached track {file} ({err}); detecting again", stacklevel=3)
        return None


def _save_detections(file: Path | None, det: Detections) -> None:
    if file is None:
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, frames=det.frames, boxes=det.boxes, probs=det.probs, points=det.points,
                 detect_frames=det.detect_frames, cuts=np.asarray(det.cuts, np.int64), num_frames=det.num_frames,
                 frame_size=np.asarray(det.frame_size))
        os.replace(tmp, file)
    except OSError as err:
        warnings.warn(f"could not cache the face track in {file} ({err}); the next run detects again", stacklevel=3)


def track_file(path: str | Path, tracker: FaceTracker, *, fps: float, convert: bool, cache=None,
               name: str | None = None) -> tuple[FaceTrack, dict]:
    """Track the face in a video file as a stream (never holding all its frames): detections from the cache
    or one decoding pass, then a second pass that cuts the crops. Returns the track and how it was made."""
    name = name or str(path)
    target = fps if convert else None
    file = cache_file(path, tracker, target, cache)
    det = _load_detections(file)
    cached = det is not None
    if det is None:
        info = probe_video(path)
        small = iter_frames(path, fps=target, chunk=tracker.batch_size * 2, max_side=tracker.detect_side or None)
        det = tracker.detect_stream(small, name, frame_size=(info.height, info.width))
        _save_detections(file, det)
    track = tracker.make_track(det, None, iter_frames(path, fps=target, chunk=16), name, fps)  # 16 full frames at a time
    return track, {"cache": None if file is None else str(file), "from_cache": cached}
