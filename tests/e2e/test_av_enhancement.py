"""The audio-visual enhancer, its generated data, the ``av-enhancement`` task and the CLI on the bundled clip.

MTCNN tracks the bundled 2-s clip (50 frames of 112 x 112) once per CLI run and once for the module's
problem fixture; everything else uses tiny models or a few frames.
"""

import json
import math

import matplotlib.pyplot as plt
import pytest
import torch

from avxai.cli import main
from avxai.io.video import VideoClip, write_video
from avxai.models import load_model, save_model
from avxai.models.av_enhancement import DEFAULT_AV_ENHANCER_CHECKPOINT, AVEnhancer, AVEnhancerConfig

ASSETS = DEFAULT_AV_ENHANCER_CHECKPOINT.parent
CLIP, CLEAN = ASSETS / "example.mp4", ASSETS / "clean.wav"
TINY = AVEnhancerConfig(crop_size=16, visual_blocks=2, visual_dim=8, audio_channels=2, audio_dim=8, hidden=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_inputs(n=2, seconds=0.4, config=TINY):
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(n, 1, int(seconds * config.sample_rate), generator=g)
    video = torch.rand(n, int(seconds * config.fps), 3, config.crop_size, config.crop_size, generator=g)
    return wav, video


# -- the model -------------------------------------------------------------------------------------------
def test_model_shapes_call_styles_and_input_checks():
    model = AVEnhancer(TINY).eval()
    wav, video = tiny_inputs()
    with torch.no_grad():
        out = model(wav, video)
        assert out.shape == wav.shape
        assert torch.allclose(model((wav, video)), out)
        mask = model.mask(wav, video)
    assert mask.shape[:2] == (2, TINY.n_fft // 2 + 1) and 0 <= float(mask.min()) and float(mask.max()) <= 1
    with pytest.raises(ValueError, match="mono waveform"):
        model(wav.repeat(1, 2, 1), video)
    with pytest.raises(ValueError, match="16x16 face crops"):
        model(wav, video[..., :12, :12])
    with pytest.raises(ValueError, match="not aligned"):
        model(wav, video[:, :4])  # 4 frames for 10 frames of audio
    with pytest.raises(ValueError, match="needs the face video"):
        model(wav)
    with pytest.raises(TypeError, match="x.float\\(\\) / 255"):
        model(wav, (video * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="visual_backbone"):
        AVEnhancerConfig(visual_backbone="vgg")
    resnet = AVEnhancer(AVEnhancerConfig(crop_size=32, visual_backbone="resnet18", visual_blocks=1, visual_dim=8,
                                         audio_channels=2, audio_dim=8, hidden=8)).eval()
    with torch.no_grad():
        assert resnet(*tiny_inputs(1, config=resnet.config)).shape == (1, 1, 3200)


def test_the_output_depends_on_the_video_and_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AVEnhancer(TINY).eval()
    wav, video = tiny_inputs()
    with torch.no_grad():
        a = model(wav, video)
        b = model(wav, video.flip(1))  # the same frames in another order
    assert (a - b).abs().max() > 1e-6
    path = save_model(model, tmp_path / "m.pt", architecture="av-enhancer", kwargs=model.config, extra={"note": "test"})
    again = load_model(path)
    with torch.no_grad():
        assert torch.equal(again(wav, video), a)
    doc = json.loads(path.with_suffix(".json").read_text())
    doc["model"]["wings"] = 2
    path.with_suffix(".json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="wings"):
        load_model(path)
    with pytest.raises(FileNotFoundError, match="train.py"):
        load_model(tmp_path / "missing.pt", architecture="av-enhancer")


def test_bundled_checkpoint_is_small_and_matches_its_clip():
    model = load_model("av-enhancer")
    assert DEFAULT_AV_ENHANCER_CHECKPOINT.stat().st_size < 3 * 2**20
    doc = json.loads(DEFAULT_AV_ENHANCER_CHECKPOINT.with_suffix(".json").read_text())
    held = doc["metrics"]["heldout"]["overall"]
    assert held["sdri_video"] - held["sdri_mean_face"] > 2.0  # recorded by the recipe: the video helps clearly
    assert model.sample_rate == 8000 and CLIP.exists() and CLEAN.exists()


# -- generated data --------------------------------------------------------------------------------------
def test_av_mixtures_add_up_and_are_deterministic():
    from avxai.data.av_mixtures import AVMixtureConfig, AVMixtures, crop_faces

    cfg = AVMixtureConfig(duration_s=0.4, sir_db=(-3.0, 3.0), snr_db=20.0, faces=("astronaut",), frame_size=(96, 96))
    gen = AVMixtures([0, 1, 2], config=cfg, seed=4)
    ex, again = gen.example(1), gen.example(1)
    assert torch.equal(ex.mixture, again.mixture) and torch.equal(ex.frames, again.frames)
    assert torch.allclose(ex.mixture, ex.target + ex.interferer + ex.noise, atol=1e-6)
    assert ex.target_speaker != ex.interferer_speaker and -3.0 <= ex.sir_db <= 3.0
    sir = 10 * math.log10(float(ex.target.pow(2).sum() / ex.interferer.pow(2).sum()))
    assert sir == pytest.approx(ex.sir_db, abs=0.01)
    assert ex.frames.shape == (10, 96, 96, 3) and ex.mouth_masks.shape == (10, 96, 96)
    crops, boxes = crop_faces(ex, 32)
    assert crops.shape == (10, 3, 32, 32) and boxes.shape == (10, 4)
    with pytest.raises(ValueError, match="interferer"):
        AVMixtures([0], config=cfg)
    with pytest.raises(ValueError, match="whole number"):
        AVMixtureConfig(sample_rate=8000, fps=30.0)


# -- the task and the CLI on the bundled clip ------------------------------------------------------------
def write_clip(path, frames, fps=25.0, audio_seconds=None, sample_rate=8000):
    frames = torch.as_tensor(frames)
    clip = VideoClip(frames=frames, fps=fps)
    if audio_seconds is not None:
        n = int(round(audio_seconds * sample_rate))
        t = torch.arange(n) / sample_rate
        clip = VideoClip(frames=frames, fps=fps, audio=(0.1 * torch.sin(2 * math.pi * 300 * t))[None].float(),
                         sample_rate=sample_rate)
    write_video(path, clip)
    return path


@pytest.fixture(scope="module")
def problem():
    from avxai.io.audio import load_audio
    from avxai.tasks.av_enhancement import AVEnhancementOptions, build

    model = load_model("av-enhancer")
    reference, _ = load_audio(CLEAN, sample_rate=model.sample_rate)
    return build(model, AVEnhancementOptions(input=CLIP, reference=reference, stream="video"))


def test_problem_on_the_bundled_clip(problem):
    video = problem.modality
    assert video.kind == "face-video" and video.grid_shape == (50, 64, 64)
    assert problem.metadata["face_detection_rate"] == 1.0
    shares = problem.metadata["av_shares"]
    # the enhancer uses the face: blanking it (the mean face) costs SDR
    assert shares["unmasked"][0] - shares["video_masked"][0] > 1.0
    assert shares["audio"][0] + shares["video"][0] == pytest.approx(
        shares["unmasked"][0] - shares["both_masked"][0], abs=1e-4)


def test_extremal_on_the_face_video_and_frames_figure(problem, tmp_path):
    from avxai.methods.extremal import ExtremalConfig, extremal
    from avxai.tasks.av_enhancement import AVEnhancementTask

    cfg = ExtremalConfig(areas=(0.1,), iterations=3, step=(25, 4, 4))
    expl = extremal(problem.model, problem.modality, problem.scorer, cfg)
    assert expl.masks.shape == (1, 1, 50, 64, 64)
    expl.metadata.update(problem.metadata)
    names = AVEnhancementTask().write_outputs(problem, expl, tmp_path)
    assert names == ["frames.png"] and (tmp_path / "frames.png").stat().st_size > 10_000
    plt.close(expl.plot())


def test_cli_occlusion_on_the_bundled_clip_finds_the_lower_face(tmp_path):
    out = tmp_path / "occ"
    # one window over the whole spectrogram (the model's own STFT: 129 bins x 201 frames of 10 ms); the face
    # video in 4 quarters of the crop over all 50 frames
    code = main(["explain", "--task", "av-enhancement", "--input", str(CLIP), "--reference", str(CLEAN),
                 "--method", "occlusion", "--window", "129,201,50,32,32", "--stride", "129,201,50,32,32",
                 "--out", str(out), "--quiet"])
    assert code == 0
    for name in ("explanation.json", "arrays.npz", "figure.png", "frames.png", "original_audio.wav",
                 "original_video.mp4"):
        assert (out / name).exists(), name
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["metadata"]["task"] == "av-enhancement" and doc["metadata"]["stream"] == "av"
    assert doc["metadata"]["modality"]["kind"] == "audio-visual"
    from avxai.explanation import Explanation, split_explanation

    video = split_explanation(Explanation.load(out))["video"].attribution[0]  # SDR drop (dB) per crop pixel
    top, bottom = float(video[:, :32].mean()), float(video[:, 32:].mean())
    assert bottom > top + 0.5  # the mouth is in the lower half of the crop


def test_cli_pca_rgb_on_the_bundled_clip(tmp_path, capsys):
    out = tmp_path / "pca"
    code = main(["explain", "--task", "av-enhancement", "--input", str(CLIP), "--method", "pca-rgb",
                 "--stream", "video", "--out", str(out), "--quiet"])
    assert code == 0
    assert (out / "pca_rgb.mp4").exists() and (out / "frames.png").exists()
    # the task's warning (no --reference) is one "avxai explain: warning:" line, not Python's file:line format
    err = capsys.readouterr().err
    assert "avxai explain: warning: no --reference" in err and "UserWarning" not in err
    doc = json.loads((out / "explanation.json").read_text())
    assert any(w.startswith("no --reference") for w in doc["metadata"]["warnings"])
    assert doc["metadata"]["score_against"] == "model output on the unmasked input"
    assert doc["metadata"]["layers"] == {"video": "model.visual.trunk.1"}


def test_cli_audio_stream_explains_the_spectrogram_with_the_face_kept(tmp_path):
    out = tmp_path / "audio"
    code = main(["explain", "--task", "av-enhancement", "--input", str(CLIP), "--reference", str(CLEAN),
                 "--stream", "audio", "--method", "occlusion", "--window", "129,50", "--stride", "129,50",
                 "--out", str(out), "--quiet"])
    assert code == 0
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["metadata"]["stream"] == "audio" and doc["metadata"]["modality"]["kind"] == "spectrogram"
    modality = doc["metadata"]["modality"]  # the model's own STFT when --n-fft / --hop-length are not given
    assert (modality["n_fft"], modality["hop_length"], modality["grid_shape"]) == (256, 80, [129, 201])
    assert (out / "figure.png").exists() and not (out / "frames.png").exists()  # no video part to paste back


def test_bad_inputs_name_the_problem(tmp_path, capsys):
    noise = (torch.rand(4, 64, 64, 3) * 255).to(torch.uint8)
    faceless = write_clip(tmp_path / "faceless.mp4", noise, audio_seconds=4 / 25)
    code = main(["explain", "--task", "av-enhancement", "--input", str(faceless), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no face found" in err and "faceless.mp4" in err
    silent = write_clip(tmp_path / "silent.mp4", noise)
    assert main(["explain", "--task", "av-enhancement", "--input", str(silent), "--out", str(tmp_path / "o")]) == 2
    assert "no audio track" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    assert main(["explain", "--task", "av-enhancement", "--input", str(corrupt), "--out", str(tmp_path / "o")]) == 2
    assert "corrupt.mp4" in capsys.readouterr().err
    assert main(["explain", "--task", "speaker", "--input", "x.wav", "--stream", "video",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--stream do(es) not apply to --task speaker" in capsys.readouterr().err
    from avxai.tasks.av_enhancement import split_perturbation

    assert split_perturbation("zero,freeze") == ("zero", "freeze") and split_perturbation(None) == ("zero", "mean-time")
    with pytest.raises(ValueError, match="AUDIO,VIDEO"):
        split_perturbation("a,b,c")
