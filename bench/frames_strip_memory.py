"""Peak memory of the frame-strip figure (``avxai.viz.video.plot_frames_strip``) on a long clip.

The figure shows 8 frames; it pastes the map back onto those frames only. Synthetic frames and a fixed face box at
the size of issue 22's film clip (281 frames of 528 x 720), an occlusion-like map over 64 x 64 crops; the peak
resident memory rise while the figure is made and drawn, in a fresh process::

    python bench/frames_strip_memory.py            # 281 frames of 528 x 720
    python bench/frames_strip_memory.py --frames 1500
"""

from __future__ import annotations

import argparse
import dataclasses
import resource

import numpy as np
import torch

from avxai.explanation import Explanation
from avxai.viz.video import plot_frames_strip


@dataclasses.dataclass
class Track:
    """What plot_frames_strip reads of a :class:`avxai.faces.FaceTrack`."""

    boxes: torch.Tensor
    frame_size: tuple
    source: str = "synthetic"
    report: dict = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=281)
    p.add_argument("--height", type=int, default=528)
    p.add_argument("--width", type=int, default=720)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t, h, w = args.frames, args.height, args.width
    frames = torch.randint(0, 255, (t, h, w, 3), dtype=torch.uint8)
    track = Track(torch.tensor([[w * 0.3, h * 0.2, w * 0.6, h * 0.6]]).repeat(t, 1), (h, w))
    expl = Explanation(method="occlusion", attribution=torch.randn(1, t, 64, 64), grid=torch.rand(1, t, 64, 64),
                       axes=("time", "height", "width"), coordinates={"time": np.arange(t) / 25.0},
                       units={"time": "s", "height": "px", "width": "px"},
                       metadata={"modality": {"kind": "face-video", "fps": 25.0},
                                 "scorer": {"scorer": "SDR", "units": "dB"}},
                       scores={"unmasked": torch.tensor([3.0])})
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fig = plot_frames_strip(expl, frames, track)
    fig.canvas.draw()
    rise = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(f"plot_frames_strip: peak RSS rise {rise:.0f} MB ({t} frames of {h} x {w}, frames alone "
          f"{frames.numel() / 2**20:.0f} MB)")
    return rise


if __name__ == "__main__":
    main()
