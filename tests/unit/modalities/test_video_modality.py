"""Face-video and audio-visual modalities on toy inputs: shapes, baselines, paste-back, alignment, shares,
and toy AV models whose relevant face region, frames and T-F band are known (found by occlusion and
extremal perturbation on the 3-D video grid and on the joint audio-visual grid). No MTCNN here."""

import math

import pytest
import torch
from torch import nn

from avxai.faces import FaceTrack
from avxai.methods.extremal import ExtremalConfig, extremal
from avxai.methods.occlusion import OcclusionConfig, occlusion
from avxai.explanation import split_explanation
from avxai.metrics.shares import modality_shares
from avxai.modalities.audio_visual import AudioVisual, FixedAudio, FixedVideo, PairInput
from avxai.modalities.spectrogram import Spectrogram
from avxai.checks import check_video
from avxai.modalities.video import FaceVideo, box_masks, boxes_to_crop
from avxai.scorers.classification import ClassLogit

SR, FPS = 8000, 25.0
T, S = 6, 16                                   # frames, crop side
REGION = (slice(2, 4), slice(8, 14), slice(4, 12))  # frames 2-3, a "mouth" box low in the crop
N_FFT, HOP = 64, 32
BAND, SPEC_FRAMES = slice(9, 15), slice(3, 9)  # the T-F cells the toy model listens to


def toy_video(seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, T, 3, S, S, generator=g) * 0.8 + 0.1


def toy_waveform(batch=1, seed=1):
    n = int(T / FPS * SR)
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    return (0.3 * torch.sin(2 * math.pi * 1500 * t) + 0.05 * torch.randn(batch, 1, n, generator=g)).float()


class ToyAV(nn.Module):
    """Logits ``(n, 2)``: class 0 = 2 * mean video brightness in REGION + mean STFT magnitude in BAND x
    SPEC_FRAMES (the streams add up); class 1 = 0. Takes ``(waveform (n, 1, time), video (n, T, 3, S, S))``
    or the STFT magnitude ``(n, 1, freq, frames)`` in place of the waveform."""

    sample_rate = SR

    def __init__(self, audio_weight=1.0, video_weight=2.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([audio_weight, video_weight]))

    def forward(self, waveform, video=None):
        if video is None:
            waveform, video = waveform
        if waveform.dim() == 4:
            spec = waveform[:, 0]
        else:
            spec = torch.stft(waveform[:, 0], N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs()
        audio = spec[:, BAND, SPEC_FRAMES].mean(dim=(1, 2))
        vid = video[:, REGION[0], :, REGION[1], REGION[2]].mean(dim=(1, 2, 3, 4))
        score = self.w[0] * audio + self.w[1] * vid
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def region_mask():
    m = torch.zeros(T, S, S)
    m[REGION] = 1.0
    return m


def fake_track(boxes, frame_size=(48, 64)):
    n = boxes.shape[0]
    nan = torch.full((n,), float("nan"))
    return FaceTrack(boxes=boxes.float(), detected=torch.ones(n, dtype=torch.bool), crops=torch.zeros(n, 3, S, S),
                     frame_size=frame_size, raw_boxes=boxes.float(), landmarks=torch.full((n, 5, 2), float("nan")),
                     probs=nan, source="toy")


# -- the video modality ------------------------------------------------------------------------------
def test_shapes_layout_and_coordinates():
    video = FaceVideo(toy_video(batch=2), FPS)
    assert video.grid_shape == (T, S, S) and video.axes == ("time", "height", "width")
    assert video.representation.shape == (2, 3, T, S, S)
    assert torch.equal(video.model_input(), toy_video(batch=2))  # the model layout (n, frames, 3, S, S)
    out = video.perturb(torch.ones(4, T, S, S))
    assert out.shape == (4, T, 3, S, S) and torch.allclose(out[3], toy_video(batch=2)[1])  # row i -> input i % 2
    coords = video.coordinates()
    assert coords["time"][1] == pytest.approx(1 / FPS) and video.units()["time"] == "s"
    meta = video.metadata()
    assert meta["fps"] == FPS and meta["crop_size"] == [S, S] and meta["num_frames"] == T


@pytest.mark.parametrize("name", ["zero", "mean-time", "freeze", "spatial-blur:2"])
def test_baselines(name):
    x = toy_video()
    video = FaceVideo(x, FPS, perturbation=name)
    kept = video.perturb(torch.ones(1, T, S, S))
    assert torch.allclose(kept, x)
    gone = video.perturb(torch.zeros(1, T, S, S))[0]
    if name == "zero":
        assert gone.abs().max() == 0
    elif name == "mean-time":  # the mean face: every frame the same, the clip's mean
        assert torch.allclose(gone, x[0].mean(dim=0, keepdim=True).expand_as(gone), atol=1e-6)
    elif name == "freeze":  # nothing kept: the first frame is held for the whole clip
        assert torch.equal(gone, x[0, :1].expand_as(gone))
    else:  # blurred in space only: smoother images, same per-frame mean (up to the borders), no time mixing
        tv = lambda v: (v[..., 1:, :] - v[..., :-1, :]).abs().mean()  # noqa: E731
        assert tv(gone) < 0.5 * tv(x[0])
        assert torch.allclose(gone.mean(dim=(1, 2, 3)), x[0].mean(dim=(1, 2, 3)), atol=0.03)
    # a mask that removes only frame 2 changes only frame 2
    mask = torch.ones(1, T, S, S)
    mask[0, 2] = 0
    part = video.perturb(mask)[0]
    changed = (part - x[0]).abs().amax(dim=(1, 2, 3)) > 1e-5
    assert changed.tolist() == [i == 2 for i in range(T)]


def test_check_video_rejects_bad_frames():
    with pytest.raises(TypeError, match="x.float\\(\\) / 255"):
        check_video((toy_video() * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        check_video(toy_video() * 3)
    with pytest.raises(ValueError, match="add a batch axis"):
        check_video(toy_video()[0])
    bad = toy_video()
    bad[0, 1, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_video(bad)
    with pytest.raises(ValueError, match="fps"):
        FaceVideo(toy_video(), 0.0)


def test_paste_back_and_boxes_in_crop_pixels():
    # the crop box of every frame: 32 px square at (x0, y0) = (10 + t, 8) in a 48 x 64 frame
    boxes = torch.tensor([[10.0 + t, 8.0, 42.0 + t, 40.0] for t in range(T)])
    track = fake_track(boxes)
    video = FaceVideo(toy_video(), FPS, track=track, frames=torch.zeros(T, 48, 64, 3, dtype=torch.uint8))
    heat = torch.zeros(T, S, S)
    heat[:, : S // 2, : S // 2] = 1.0  # the top-left quarter of every crop
    pasted = video.paste_back(heat)
    assert pasted.shape == (T, 48, 64)
    for t in range(T):
        ys, xs = torch.nonzero(pasted[t] > 0.5, as_tuple=True)
        assert xs.min() >= 10 + t and xs.max() < 26 + t + 1 and ys.min() >= 8 and ys.max() < 24 + 1
        assert pasted[t, :, : 9 + t].abs().max() == 0  # nothing left of the box
    # a box given in frame pixels lands in the same crop pixels in every frame, whatever the head motion
    mouth = torch.tensor([[18.0 + t, 28.0, 34.0 + t, 36.0] for t in range(T)])
    in_crop = boxes_to_crop(mouth, boxes, S)
    assert torch.allclose(in_crop, torch.tensor([[4.0, 10.0, 12.0, 14.0]]).expand(T, 4), atol=1e-5)
    region = video.region_in_crop(mouth)
    assert region.shape == (T, S, S) and region.sum(dim=(1, 2)).tolist() == [32.0] * T
    assert box_masks(torch.tensor([[4.0, 10.0, 12.0, 14.0]]), (S, S), grow=0.5).sum() == pytest.approx(16 * 8)
    with pytest.raises(ValueError, match="track"):
        FaceVideo(toy_video(), FPS).paste_back(heat)


# -- the audio-visual modality -----------------------------------------------------------------------
def make_av(batch=1, video_perturbation="zero", waveform=None, model_input="waveform"):
    wav = toy_waveform(batch) if waveform is None else waveform
    spec = Spectrogram(wav, SR, n_fft=N_FFT, hop_length=HOP, perturbation="zero", model_input=model_input)
    return AudioVisual(spec, FaceVideo(toy_video(batch=batch), FPS, perturbation=video_perturbation))


def test_joint_grid_split_and_join():
    av = make_av(batch=2)
    audio, video = av.parts()
    n_a, n_v = math.prod(audio.grid_shape), math.prod(video.grid_shape)
    assert av.grid_shape == (n_a + n_v,)
    masks = [torch.rand(4, *audio.grid_shape), torch.rand(4, *video.grid_shape)]
    joint = av.join_masks(masks)
    back = av.split_mask(joint)
    assert all(torch.equal(a, b) for a, b in zip(masks, back))
    wav, vid = av.perturb(torch.ones(4, n_a + n_v))
    assert wav.shape == (4, 1, toy_waveform().shape[-1]) and vid.shape == (4, T, 3, S, S)
    assert torch.allclose(wav[1], toy_waveform(2)[1], atol=1e-5)


def test_streams_must_be_aligned_within_a_frame():
    long = toy_waveform()
    too_long = torch.cat([long, long[..., : int(2 * SR / FPS)]], dim=-1)  # two frames of extra audio
    with pytest.raises(ValueError, match="not aligned"):
        make_av(waveform=too_long)
    make_av(waveform=long[..., : -int(0.5 * SR / FPS)])  # half a frame short: accepted


def test_shares_sum_and_follow_the_model():
    av = make_av()
    model = ToyAV(audio_weight=1.0, video_weight=2.0)
    shares = modality_shares(model, av, ClassLogit(0))
    # Shapley values of a two-player game add up to the total effect; additive streams do not interact
    assert float(shares.audio + shares.video) == pytest.approx(float(shares.unmasked - shares.both_masked), abs=1e-6)
    assert float(shares.interaction) == pytest.approx(0.0, abs=1e-5)
    assert float(shares.audio_share + shares.video_share) == pytest.approx(1.0, abs=1e-6)
    # with zero baselines each stream's value is its term of the score
    with torch.no_grad():
        wav, vid = av.model_input()
        video_term = 2.0 * float(vid[:, REGION[0], :, REGION[1], REGION[2]].mean())
    assert float(shares.video) == pytest.approx(video_term, rel=1e-4)
    assert float(shares.unmasked - shares.video_masked) == pytest.approx(video_term, rel=1e-4)
    # a model that ignores the video gives it no share
    deaf = modality_shares(ToyAV(audio_weight=1.0, video_weight=0.0), av, ClassLogit(0))
    assert float(deaf.video) == pytest.approx(0.0, abs=1e-6) and float(deaf.audio_share) == pytest.approx(1.0)
    assert set(shares.as_dict()) >= {"audio", "video", "audio_share", "video_share", "interaction", "units"}


# -- toy models whose relevant region is known ------------------------------------------------------
def test_occlusion_finds_the_region_on_the_video_grid():
    video = FaceVideo(toy_video(), FPS, perturbation="zero")
    model = FixedAudio(ToyAV(), toy_waveform())
    expl = occlusion(model, video, ClassLogit(0), OcclusionConfig(window=(1, 2, 2), stride=(1, 2, 2), progress=False))
    attr = expl.attribution[0]
    inside = region_mask().bool()
    assert attr[~inside].abs().max() < 1e-6 and attr[inside].min() > 0
    assert tuple(expl.attribution.shape) == (1, T, S, S)


def test_extremal_finds_the_region_on_the_video_grid():
    video = FaceVideo(toy_video(), FPS, perturbation="zero")
    model = FixedAudio(ToyAV(audio_weight=0.0), toy_waveform())
    area = float(region_mask().mean())
    cfg = ExtremalConfig(areas=(area,), iterations=100, step=1, sigma=(0.5, 0.7, 0.7), progress=False, seed=0)
    expl = extremal(model, video, ClassLogit(0), cfg)
    mask = expl.masks[0, 0]
    assert float((mask * region_mask()).sum() / mask.sum()) >= 0.8
    assert abs(float(mask.mean()) - area) <= 0.03


def band_mask(shape):
    band = torch.zeros(shape)
    band[BAND, SPEC_FRAMES] = 1.0
    return band


def test_joint_occlusion_finds_the_face_region_and_the_band():
    av = make_av(model_input="magnitude")  # the toy model reads the magnitude: each T-F cell acts alone
    expl = occlusion(ToyAV(), av, ClassLogit(0), OcclusionConfig(window=(3, 3, 1, 2, 2), stride=(3, 3, 1, 2, 2),
                                                                 progress=False))
    parts = split_explanation(expl)
    assert parts["audio"].axes == ("freq", "time") and parts["video"].axes == ("time", "height", "width")
    for part, truth in ((parts["video"], region_mask()), (parts["audio"], band_mask(av.parts()[0].grid_shape))):
        attr, inside = part.attribution[0], truth.bool()
        assert attr[~inside].abs().max() < 1e-6 and attr[inside].min() > 0
    # a waveform model: masking T-F cells next to the band leaks into it through the re-synthesis (STFT
    # consistency); the band still holds the largest values and most of the evidence
    wav = split_explanation(occlusion(ToyAV(), make_av(), ClassLogit(0),
                                      OcclusionConfig(window=(3, 3, 6, 16, 16), stride=(3, 3, 6, 16, 16),
                                                      progress=False)))["audio"].attribution[0]
    band = band_mask(wav.shape).bool()
    assert band.flatten()[wav.argmax()] and wav[band].mean() > 5 * wav[~band].abs().mean()


def test_joint_extremal_keeps_the_face_region_and_the_band():
    av = make_av(model_input="magnitude")
    band = band_mask(av.parts()[0].grid_shape)
    area = 0.5 * float(region_mask().mean()) + 0.5 * float(band.mean())  # the parts weigh equally
    cfg = ExtremalConfig(areas=(round(area, 4),), iterations=80, step=1, sigma=(1.0, 1.0, 0.5, 0.7, 0.7),
                         progress=False)
    parts = split_explanation(extremal(ToyAV(), av, ClassLogit(0), cfg))
    video, audio = parts["video"].masks[0, 0], parts["audio"].masks[0, 0]
    assert float((video * region_mask()).sum() / video.sum()) >= 0.7  # chance: 0.06
    assert float((audio * band).sum() / audio.sum()) >= 0.7  # chance: 0.02


def test_one_stream_wrappers_tile_the_fixed_input():
    model = ToyAV()
    wav, vid = toy_waveform(batch=2), toy_video(batch=2)
    full = model(wav, vid)
    assert torch.allclose(FixedAudio(model, wav)(vid.repeat(2, 1, 1, 1, 1)), full.repeat(2, 1))
    assert torch.allclose(FixedVideo(model, vid)(wav.repeat(3, 1, 1)), full.repeat(3, 1))
    assert FixedAudio(model, wav).sample_rate == SR
    assert torch.allclose(PairInput(model)((wav, vid)), full)


def test_freeze_holds_the_last_kept_frame_over_a_removed_run():
    from avxai.perturbations import GridInfo, parse_perturbation

    # 6 frames of a 1 x 2 x 2 video whose pixels equal the frame index: a removed run shows one still frame
    x = torch.arange(6, dtype=torch.float32).view(1, 1, 6, 1, 1).expand(1, 1, 6, 2, 2).contiguous()
    prepared = parse_perturbation("freeze").prepare(x, GridInfo(("time", "height", "width")))
    mask = torch.ones(2, 6, 2, 2)
    mask[0, 2:5] = 0.0  # input 0: frames 2-4 removed everywhere -> all show frame 1
    mask[1, :3, 0, 0] = 0.0  # input 1: pixel (0, 0) removed in frames 0-2 (nothing kept before) -> frame 0
    out = prepared.apply(mask)
    assert out[0, 0, :, 0, 0].tolist() == [0, 1, 1, 1, 1, 5]
    assert out[1, 0, :, 0, 0].tolist() == [0, 0, 0, 3, 4, 5] and out[1, 0, :, 1, 1].tolist() == [0, 1, 2, 3, 4, 5]
    soft = prepared.apply(torch.full((1, 6, 2, 2), 0.5))  # 0.5 keeps (threshold): held = x, the blend is x
    assert torch.allclose(soft[0], x[0])


def test_smoothgrad_on_both_streams_needs_mask_noise():
    from avxai.methods.gradients import SmoothGradConfig, smoothgrad

    av = make_av(model_input="magnitude")
    with pytest.raises(ValueError, match="noise_on='mask'"):
        smoothgrad(ToyAV(), av, ClassLogit(0), SmoothGradConfig(noise_on="representation", samples=2))
    expl = smoothgrad(ToyAV(), av, ClassLogit(0), SmoothGradConfig(noise_on="mask", samples=2))
    video = split_explanation(expl)["video"].attribution[0].abs()
    inside = region_mask().bool()
    assert video[inside].mean() > 10 * video[~inside].mean()  # the toy model reads only the face region


def test_part_weights_hold_when_the_parts_have_close_cell_counts():
    from avxai.methods.parts import part_repeats

    for cells, weights in (([1000, 1490], [1, 1]), ([25929, 204800], [1, 1]), ([100, 300], [1, 2]), ([7, 9], [1, 1])):
        repeats = part_repeats(cells, weights)
        entries = [r * c for r, c in zip(repeats, cells)]
        shares = [e / sum(entries) for e in entries]
        for share, w in zip(shares, weights):
            assert abs(share - w / sum(weights)) <= 0.05 * w / sum(weights), (cells, weights, repeats)
    assert part_repeats([25929, 204800], [1, 1]) == [8, 1]  # the usual AV case: the video grid is the larger
