"""Face tracking speed at 720p: the default tracker (MTCNN on frames scaled to 640 px, every 3rd frame of a shot,
frames decoded as a stream) against the detector as it was before issue 22 (MTCNN on every full frame), with the
boxes of both compared.

    .venv/bin/python bench/face_tracking.py [--seconds 4] [--threads 2] [--size 1280x720]

The clip is generated (tests/toys/clips.py is not imported; the same idea): a real face photograph
(scikit-image's astronaut, public domain) of 180 px moving on a gradient, a smaller bystander (camera, 84 px),
a cut at the middle to a shot of the camera face; h264 at 25 fps. Prints wall and CPU seconds and frames per
second of (a) the pass that decodes and detects (what a first command waits for), (b) the pass that crops,
(c) the baseline: every frame decoded and held, MTCNN on each at full size; then the crop boxes' and the raw
MTCNN boxes' largest and mean differences between the two, in pixels, and the load average (the development
CPU is shared: numbers measured under load say so).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def make_clip(path: str, seconds: float, size: tuple[int, int]) -> None:
    from avxai.data.talking_face import _locate
    from avxai.io.video import VideoClip, write_video

    height, width = size
    n = int(round(seconds * 25))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)

    def patch(name: str, side: int) -> np.ndarray:
        img, box, _ = _locate(name)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = 0.65 * max(box[2] - box[0], box[3] - box[1])
        from torchvision.ops import roi_align

        rois = torch.tensor([[0.0, cx - half, cy - half, cx + half, cy + half]], dtype=torch.float32)
        crop = roi_align(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float(), rois, (side, side), aligned=True)
        return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    hero, bystander, other = patch("astronaut", 180), patch("camera", 84), patch("camera", 220)
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        second = t >= n // 2
        base = (70, 160, 80) if second else (60, 120, 170)
        frame = np.stack([base[c] + 40 * np.sin(x / width * np.pi * (c + 1)) + 30 * y / height for c in range(3)], -1)
        frame = frame.clip(0, 255).astype(np.uint8)
        if not second:
            hx, hy = int(300 + 3 * t), int(200 + 20 * np.sin(t / 8))
            frame[hy:hy + 180, hx:hx + 180] = hero
            frame[260:344, 1000:1084] = bystander
        else:
            frame[150:370, 500 + 2 * (t - n // 2):720 + 2 * (t - n // 2)] = other
        frames[t] = frame
    write_video(path, VideoClip(torch.from_numpy(frames), 25.0))


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from avxai.faces import FaceTracker
    from avxai.io.video import read_video
    from avxai.io.video_stream import iter_frames
    from avxai.tasks.av_enhancement import SPARSE_DETECTION_PIXELS, TRACKER_DEFAULTS

    width, height = (int(v) for v in args.size.split("x"))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.mp4")
        make_clip(path, args.seconds, (height, width))
        every = 3 if width * height > SPARSE_DETECTION_PIXELS else 1
        new = FaceTracker(crop_size=64, detect_every=every, **TRACKER_DEFAULTS)
        old = FaceTracker(crop_size=64, detect_every=1, detect_side=0)  # MTCNN as before issue 22
        new.mtcnn, old.mtcnn  # built outside the timings
        small = iter_frames(path, chunk=32, max_side=new.detect_side)  # scaled by FFmpeg while decoding
        det, w1, c1 = timed(lambda: new.detect_stream(small, "clip", frame_size=(height, width)))
        n = det.num_frames
        track, w2, c2 = timed(lambda: new.make_track(det, None, iter_frames(path, chunk=64), "clip"))

        def baseline():
            frames = read_video(path).frames
            return old.make_track(old.detect_stream([frames], "clip"), None, [frames], "clip")

        ref, w3, c3 = timed(baseline)
    print(f"clip: {n} frames of {width}x{height} at 25 fps ({args.seconds:g} s), {len(det.cuts)} cut(s) at "
          f"{det.cuts}; torch threads {args.threads}; load average before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"default tracker, decode + cuts + MTCNN ({TRACKER_DEFAULTS['detect_side']} px, every {every}): "
          f"{w1:6.1f} s wall ({n / w1:5.1f} frames/s), {c1:6.1f} s CPU ({n / c1:5.1f} frames per CPU-s); "
          f"MTCNN ran on {det.detect_frames.size} frames")
    print(f"default tracker, second decode + crops           : {w2:6.1f} s wall ({n / w2:5.1f} frames/s), {c2:6.1f} s CPU")
    print(f"before issue 22: decode all + MTCNN every full frame: {w3:6.1f} s wall ({n / w3:5.1f} frames/s), "
          f"{c3:6.1f} s CPU ({n / c3:5.1f} frames per CPU-s)")
    d = (track.boxes - ref.boxes).abs()
    both = track.detected & ref.detected
    r = (track.raw_boxes[both] - ref.raw_boxes[both]).abs()
    print(f"crop boxes vs before: max {float(d.max()):.1f} px, mean {float(d.mean()):.2f} px over {n} frames; raw MTCNN "
          f"boxes on the {int(both.sum())} frames both detected: max {float(r.max()):.1f} px, mean {float(r.mean()):.2f} px")
    print(f"followed face: {track.report['switches']} switches, undetected {track.report['undetected']}")
    print(f"load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
