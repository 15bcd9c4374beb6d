import json

import numpy as np
import soundfile as sf
import torch

from avxai import Explanation, OcclusionConfig, Scorer, Spectrogram, occlusion
from toy_models import RegionEnergy, tone_in_noise


class First(Scorer):
    units = "a.u."

    def __call__(self, output):
        return output[:, 0]


def test_save_writes_json_arrays_figure_and_audio_and_loads_back(tmp_path):
    wav = tone_in_noise(seconds=0.5)
    mod = Spectrogram(wav, 16000, n_fft=256, hop_length=64)
    expl = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(8, 8), stride=(8, 8)))
    expl.metadata["segments"] = [{"start_s": 0.1, "end_s": 0.3, "label": "A"}]
    out = expl.save(tmp_path / "e")
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["method"] == "occlusion" and doc["axes"] == ["freq", "time"]
    assert doc["metadata"]["modality"]["sample_rate"] == 16000
    assert doc["metadata"]["config"]["window"] == [8, 8]
    assert "torch" in doc["metadata"]["versions"]
    for name in ("figure.png", "arrays.npz", "original.wav", "preserved.wav", "deleted.wav"):
        assert (out / name).stat().st_size > 0
    original, rate = sf.read(out / "original.wav")
    assert rate == 16000 and np.allclose(original, wav[0, 0].numpy(), atol=1e-5)
    preserved, _ = sf.read(out / "preserved.wav")
    assert not np.allclose(preserved, original)  # the masked input differs from the original
    back = Explanation.load(out)
    assert torch.allclose(back.attribution, expl.attribution)
    assert back.axes == expl.axes and back.units == expl.units
    assert np.allclose(back.coordinates["time"], expl.coordinates["time"])
    assert torch.allclose(back.scores["unmasked"], expl.scores["unmasked"])
    assert back.media["original"][0] == "audio"
    fig = back.plot()
    assert len(fig.axes) >= 3
