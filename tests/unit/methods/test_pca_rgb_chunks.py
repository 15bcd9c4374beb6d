"""PCA-RGB on a long clip in bounded memory: the projection goes by chunks, the fit copies only its sample."""

import sys

import pytest
import torch

import avxai.methods.pca_rgb  # noqa: F401  (the module; avxai.methods.pca_rgb the attribute is the method)
from avxai.methods.pca_rgb import PCAEmbedding


def features(frames=40, channels=6, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, channels, frames, side, side, generator=g)
    base[:, 1] += 3 * base[:, 0]  # a dominant direction
    return base


def test_chunked_projection_equals_the_whole(monkeypatch):
    x = features()
    emb = PCAEmbedding.fit(x)
    whole = emb.transform(x)
    monkeypatch.setattr(sys.modules["avxai.methods.pca_rgb"], "PROJECT_CHUNK", 7)  # 2560 vectors in 366 chunks
    assert torch.allclose(emb.transform(x), whole, atol=1e-6)
    assert whole.shape == (1, 3, 40, 8, 8) and whole.dtype == torch.float32


def test_the_fit_copies_only_its_sample(monkeypatch):
    x = features(frames=200)
    copied = []
    real_double = torch.Tensor.double

    def counting(self, *args, **kwargs):
        copied.append(self.numel())
        return real_double(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "double", counting)
    emb = PCAEmbedding.fit(x, max_vectors=1000)
    assert max(copied) <= 1000 * 6  # never the 12,800 x 6 features of the clip
    # the sample's components match the whole clip's dominant direction
    full = PCAEmbedding.fit(x, max_vectors=10**9)
    assert float((emb.components[0] * full.components[0]).sum().abs()) > 0.99
    split = PCAEmbedding.fit([x[:, :, :100], x[:, :, 100:]], max_vectors=1000)  # a data set: same sampling
    assert float((split.components[0] * full.components[0]).sum().abs()) > 0.99
    with pytest.raises(ValueError, match="at least 3 channels"):
        PCAEmbedding.fit(x[:, :2])
