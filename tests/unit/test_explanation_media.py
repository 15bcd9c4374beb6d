"""Saved media are converted a few frames at a time, to the same bytes as the whole clip at once."""

import torch

import avxai.explanation as explanation_module
from avxai.explanation import _video_bytes


def test_video_bytes_in_chunks_equal_the_whole_conversion(monkeypatch):
    video = torch.rand(23, 3, 6, 4, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2  # beyond [0, 1] too
    expected = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    monkeypatch.setattr(explanation_module, "BYTES_CHUNK_FRAMES", 5)  # 5 chunks, the last one short
    got = _video_bytes(video)
    assert got.dtype == torch.uint8 and got.shape == (23, 6, 4, 3) and torch.equal(got, expected)
    assert got.is_contiguous()  # the layout the encoder reads frame by frame
