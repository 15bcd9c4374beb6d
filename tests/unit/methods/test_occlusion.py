import pytest
import torch

from avxai import OcclusionConfig, Scorer, Spectrogram, TensorModality, occlusion
from toys.models import FRAMES, FREQ_BAND, GridRegion, RegionEnergy, tone_in_noise

SR = 16000


class First(Scorer):
    units = "a.u."

    def __call__(self, output):
        return output[:, 0]


def _region_mask(shape, freq, frames):
    m = torch.zeros(shape, dtype=torch.bool)
    m[freq, frames] = True
    return m


def test_occlusion_finds_the_known_frames_and_bands():
    wav = tone_in_noise(seconds=0.3)
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64, model_input="magnitude")
    # window of one cell: the map is exactly the score drop of each cell
    expl = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(1, 1), stride=(1, 1), batch_size=512))
    attr = expl.attribution[0]
    region = _region_mask(attr.shape, FREQ_BAND, FRAMES)
    assert attr[~region].abs().max() == 0
    assert (attr[region] > 0).all()
    # with 4x4 windows the maximum is in the region and nothing lies further than 3 cells from it
    expl = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(4, 4), stride=(2, 2)))
    attr = expl.attribution[0]
    f, t = divmod(int(attr.argmax()), attr.shape[1])
    assert FREQ_BAND.start <= f < FREQ_BAND.stop and FRAMES.start <= t < FRAMES.stop
    halo = _region_mask(attr.shape, slice(FREQ_BAND.start - 3, FREQ_BAND.stop + 3),
                        slice(FRAMES.start - 3, FRAMES.stop + 3))
    assert attr[~halo].abs().max() == 0


def test_occlusion_through_the_waveform_finds_the_region():
    mod = Spectrogram(tone_in_noise(seconds=0.3), SR, n_fft=256, hop_length=64)  # mask -> iSTFT -> model's STFT
    expl = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(5, 5), stride=(5, 5)))
    attr = expl.attribution[0]
    f, t = divmod(int(attr.argmax()), attr.shape[1])
    assert FREQ_BAND.start <= f < FREQ_BAND.stop and FRAMES.start <= t < FRAMES.stop


@pytest.mark.parametrize("grid,region", [((40,), (slice(10, 20),)),
                                         ((6, 10, 12), (slice(2, 4), slice(3, 7), slice(4, 8)))])
def test_occlusion_on_1d_and_3d_grids(grid, region):
    axes = {1: ("time",), 3: ("time", "height", "width")}[len(grid)]
    x = torch.rand(1, 2, *grid) + 0.1
    expl = occlusion(GridRegion(region), TensorModality(x, axes), First(),
                     OcclusionConfig(window=1, stride=1, batch_size=64))
    truth = torch.zeros(grid, dtype=torch.bool)
    truth[region] = True
    attr = expl.attribution[0]
    assert (attr[truth] > 0).all() and attr[~truth].abs().max() == 0
    assert torch.allclose(attr[truth], x[0].sum(0)[truth], atol=1e-5)  # drop = the cell's own contribution


def test_batch_size_invariance_and_determinism():
    mod = Spectrogram(tone_in_noise(seconds=0.3), SR, n_fft=256, hop_length=64)
    cfg = dict(window=(16, 8), stride=(8, 4))
    a1 = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(batch_size=1, **cfg)).attribution
    a8 = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(batch_size=8, **cfg)).attribution
    again = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(batch_size=8, **cfg)).attribution
    assert torch.allclose(a1, a8, atol=1e-6)
    assert torch.equal(a8, again)


def test_a_batch_of_inputs_gives_each_input_its_own_map():
    wavs = tone_in_noise(seconds=0.3, batch=2, seed=1)
    wavs[1] *= 0.25
    cfg = OcclusionConfig(window=(16, 8), stride=(8, 4), batch_size=16)
    both = occlusion(RegionEnergy(), Spectrogram(wavs, SR, n_fft=256, hop_length=64), First(), cfg)
    for i in range(2):
        alone = occlusion(RegionEnergy(), Spectrogram(wavs[i:i + 1], SR, n_fft=256, hop_length=64), First(), cfg)
        assert torch.allclose(both.attribution[i], alone.attribution[0], atol=1e-5)
        assert torch.allclose(both.scores["unmasked"][i], alone.scores["unmasked"][0])


def test_same_map_as_captum_occlusion():
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    mod = Spectrogram(tone_in_noise(seconds=0.5), SR, n_fft=256, hop_length=64, perturbation="mean")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(mod.model_input().reshape(1, -1)[:, :0].new_zeros(1, 1, *mod.grid_shape))  # materialise the lazy layer

    class OnMagnitude(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, wav):  # the model sees the waveform; captum sees the magnitude grid
            spec = torch.stft(wav[:, 0], 256, 64, window=torch.hann_window(256), return_complex=True).abs()
            return self.net(spec.unsqueeze(1))

    wrapped = OnMagnitude()
    scorer = First()
    ours = occlusion(wrapped, mod, scorer, OcclusionConfig(window=(9, 5), stride=(8, 4), batch_size=16))
    grid = mod.representation  # (1, 1, 129, 126): 129 = 9 + 15*8, 126 = ... covered by the strides below
    baseline = mod.perturbation.baseline(grid, mod.info)

    def forward(magnitude):
        with torch.no_grad():
            return scorer(wrapped(mod.to_model_input(magnitude)))

    theirs = captum.Occlusion(forward).attribute(grid, sliding_window_shapes=(1, 9, 5), strides=(1, 8, 4),
                                                 baselines=baseline, perturbations_per_eval=16)
    assert (theirs[0, 0] != 0).float().mean() > 0.9
    assert (ours.attribution[0] - theirs[0, 0]).abs().max() <= 1e-5


def test_config_validation():
    with pytest.raises(ValueError, match="window"):
        OcclusionConfig(window=0)
    with pytest.raises(ValueError, match="batch_size"):
        OcclusionConfig(batch_size=0)
    mod = TensorModality(torch.rand(1, 1, 10), ("time",))
    with pytest.raises(ValueError, match="does not fit"):
        occlusion(GridRegion((slice(0, 2),)), mod, First(), OcclusionConfig(window=20))
    with pytest.raises(ValueError, match="1 axes"):
        occlusion(GridRegion((slice(0, 2),)), mod, First(), OcclusionConfig(window=(2, 2)))


def test_nan_from_the_model_is_an_error():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x.sum(dim=(1, 2)).unsqueeze(1) * float("nan")

    with pytest.raises(ValueError, match="NaN"):
        occlusion(Broken(), TensorModality(torch.rand(1, 1, 10), ("time",)), First(), OcclusionConfig(window=2))
