"""Train the reference audio-visual enhancer on generated talking faces and write the bundled assets.

    python recipes/av_enhancement/train.py             # full run (about 10 minutes on 2 shared CPU cores)
    python recipes/av_enhancement/train.py --debug     # seconds; writes only under --out
    python recipes/av_enhancement/train.py --steps 300 --set batch_size=4 --out /tmp/av

Data (``avxai.data.av_mixtures``): the target is a synthetic speaker, the interferer another synthetic
speaker of the same population at (nearly) equal level, and the video is the target's talking face
(its mouth opens with the target's loudness). Audio alone cannot tell which voice is the target; the
face can. Training targets and their faces are rendered once into a pool; every batch mixes a random
one-second crop of a pool target (with its face crops) with a crop of another pool speaker. Held-out
mixtures use speakers, utterances and head motions never seen in training.

The script reports the SDR (BSS-eval v3, fast_bss_eval, 512 taps) and SI-SDR of the mixture and of the
output against the clean target, with the real face video and with the video blanked (the mean face of
the clip repeated: no motion; and black frames). The model must gain clearly more with the video.

Outputs
-------
``<assets>/av_enhancer.pt`` + ``av_enhancer.json``   state dict and config (model, data, metrics)
``<assets>/example.mp4``        a held-out mixture with the target's face (h264 + aac), 112x112, 2 s
``<assets>/clean.wav``          the clean target of the example (same length as the mp4's audio)
``<assets>/mouth_boxes.json``   the generator's mouth box per frame (x0, y0, x1, y1, frame pixels)
``<out>/metrics.json``          everything measured
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from avxai.data.av_mixtures import AVMixtureConfig, AVMixtures, crop_faces
from avxai.io.audio import save_audio
from avxai.io.video import write_video
from avxai.models.av_enhancement import AVEnhancer, AVEnhancerConfig, load_av_enhancer, save_av_enhancer
from avxai.scorers.sdr import bss_sdr, si_sdr
from avxai.recipe_config import add_train_arguments, config_from_dict, train_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of the recipe (see config.yaml for what each one does)."""

    seed: int = 0
    sample_rate: int = 8000
    fps: float = 25.0
    speaker_seed: int = 0
    train_speakers: int = 40
    clips_per_speaker: int = 3
    clip_s: float = 3.0
    crop_s: float = 1.0
    sir_db: tuple[float, float] = (-3.0, 3.0)
    noise_prob: float = 0.3
    snr_db: tuple[float, float] = (10.0, 30.0)
    jitter_px: float = 3.0
    jitter_scale: float = 0.05
    frame_jitter_px: float = 0.8
    eval_speakers: tuple[int, int] = (100, 112)
    eval_mixtures: int = 24
    eval_s: float = 2.0
    eval_sir_db: float = 0.0
    example_s: float = 2.0
    frame_size: tuple[int, int] = (112, 112)
    crop_size: int = 64
    n_fft: int = 256
    hop_length: int = 80
    visual_backbone: str = "mobilenet_v3_small"
    visual_blocks: int = 4
    visual_dim: int = 64
    audio_channels: int = 8
    audio_dim: int = 128
    hidden: int = 128
    steps: int = 500
    batch_size: int = 8
    lr: float = 0.002
    max_train_s: float = 1500.0
    bn_batches: int = 50

    def __post_init__(self):
        for name in ("train_speakers", "clips_per_speaker", "eval_mixtures", "steps", "batch_size", "bn_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.train_speakers < 2:
            raise ValueError("train_speakers must be >= 2 (the interferer is another speaker)")
        if not 0 < self.crop_s <= self.clip_s:
            raise ValueError(f"crop_s must be in (0, clip_s={self.clip_s}], got {self.crop_s}")
        if abs(self.crop_s * self.fps - round(self.crop_s * self.fps)) > 1e-6:
            raise ValueError(f"crop_s * fps must be a whole number of frames, got {self.crop_s * self.fps}")
        lo, hi = self.eval_speakers
        if not self.train_speakers <= lo < hi - 1:
            raise ValueError(f"eval_speakers [{lo}, {hi}) must hold >= 2 ids above the training ids "
                             f"0..{self.train_speakers - 1}")
        if not 0 <= self.noise_prob <= 1:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        if self.lr <= 0 or self.max_train_s <= 0:
            raise ValueError(f"lr and max_train_s must be > 0, got {self.lr}, {self.max_train_s}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from_dict(cls, d)

    def model_config(self) -> AVEnhancerConfig:
        return AVEnhancerConfig(sample_rate=self.sample_rate, fps=self.fps, n_fft=self.n_fft,
                                hop_length=self.hop_length, crop_size=self.crop_size,
                                visual_backbone=self.visual_backbone, visual_blocks=self.visual_blocks,
                                visual_dim=self.visual_dim, audio_channels=self.audio_channels,
                                audio_dim=self.audio_dim, hidden=self.hidden)

    def mixture_config(self, duration_s: float, sir_db, snr_db=None) -> AVMixtureConfig:
        return AVMixtureConfig(sample_rate=self.sample_rate, fps=self.fps, duration_s=duration_s, sir_db=sir_db,
                               snr_db=snr_db, frame_size=self.frame_size)


DEBUG_OVERRIDES = dict(train_speakers=3, clips_per_speaker=1, clip_s=1.0, eval_speakers=[100, 102], eval_mixtures=2,
                       eval_s=1.0, steps=2, batch_size=2, audio_dim=16, hidden=16, visual_dim=8, bn_batches=2)


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p, config=HERE / "config.yaml", out=REPO / "avxai-out" / "av_enhancement_train",
                        assets="assets/av_enhancement", length="steps")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy machine)")
    args = p.parse_args(argv)
    cfg = train_config(p, args, TrainConfig, debug_overrides=DEBUG_OVERRIDES, assets=REPO / "assets" / "av_enhancement",
                       length="steps")
    return cfg, args


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
class Pool:
    """Target utterances with their face crops (uint8), rendered once; batches are mixed from them."""

    def __init__(self, cfg: TrainConfig):
        gen = AVMixtures(range(cfg.train_speakers), config=cfg.mixture_config(cfg.clip_s, sir_db=0.0),
                         seed=cfg.seed, speaker_seed=cfg.speaker_seed)
        rng = np.random.default_rng([cfg.seed, 0xC80])
        self.speech, self.crops, self.speaker = [], [], []
        for i in range(cfg.train_speakers * cfg.clips_per_speaker):
            ex = gen.example(i)
            crops, _ = crop_faces(ex, cfg.crop_size, jitter_px=cfg.jitter_px, jitter_scale=cfg.jitter_scale,
                                  frame_jitter_px=cfg.frame_jitter_px, rng=rng)
            target = ex.target / ex.target.pow(2).mean().sqrt().clamp_min(1e-8)  # unit power
            self.speech.append(target.reshape(-1))
            self.crops.append((crops * 255).round().to(torch.uint8))
            self.speaker.append(ex.target_speaker)
        self.per_frame = cfg.sample_rate / cfg.fps
        self.frames = int(round(cfg.crop_s * cfg.fps))

    def __len__(self) -> int:
        return len(self.speech)

    def batch(self, cfg: TrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mixture (b, 1, time)``, ``video (b, frames, 3, S, S)``, ``target (b, 1, time)``."""
        mixes, videos, targets = [], [], []
        n = int(round(self.frames * self.per_frame))
        for _ in range(cfg.batch_size):
            i = int(rng.integers(len(self)))
            j = int(rng.integers(len(self)))
            while self.speaker[j] == self.speaker[i]:
                j = int(rng.integers(len(self)))
            total = self.crops[i].shape[0]
            f0 = int(rng.integers(total - self.frames + 1))
            s0 = int(round(f0 * self.per_frame))
            target = self.speech[i][s0:s0 + n]
            g0 = int(rng.integers(self.speech[j].shape[0] - n + 1))
            other = self.speech[j][g0:g0 + n]
            gain = 10 ** (-float(rng.uniform(*cfg.sir_db)) / 20)
            mix = target + gain * other
            if rng.random() < cfg.noise_prob:
                noise = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
                mix = mix + noise * 10 ** (-float(rng.uniform(*cfg.snr_db)) / 20)
            level = 10 ** (float(rng.uniform(-30, -15)) / 20) / float(mix.pow(2).mean().sqrt().clamp_min(1e-8))
            mixes.append(mix * level)
            targets.append(target * level)
            videos.append(self.crops[i][f0:f0 + self.frames].float() / 255)
        return torch.stack(mixes)[:, None], torch.stack(videos), torch.stack(targets)[:, None]


def heldout_set(cfg: TrainConfig) -> list[dict]:
    """Held-out mixtures: new speakers (target and interferer), new utterances, new head motions."""
    gen = AVMixtures(range(*cfg.eval_speakers), config=cfg.mixture_config(cfg.eval_s, sir_db=cfg.eval_sir_db),
                     seed=cfg.seed + 1000, speaker_seed=cfg.speaker_seed)
    items = []
    for ex in gen.examples(cfg.eval_mixtures):
        crops, _ = crop_faces(ex, cfg.crop_size)
        items.append({"mixture": ex.mixture, "target": ex.target, "video": crops, "face": ex.face})
    return items


def blank(video: torch.Tensor, how: str) -> torch.Tensor:
    """``"mean"``: every frame replaced by the clip's mean face (no motion); ``"black"``: zeros."""
    if how == "mean":
        return video.mean(dim=1, keepdim=True).expand_as(video)
    return torch.zeros_like(video)


@torch.no_grad()
def evaluate(model: AVEnhancer, items: list[dict]) -> dict:
    """Mean SDR / SI-SDR (dB) of the mixture and of the output with the video, the mean face and black frames."""
    model.eval()
    mix = torch.stack([it["mixture"] for it in items])
    clean = torch.stack([it["target"] for it in items])[:, 0].double()
    video = torch.stack([it["video"] for it in items])
    rows = {"sdr_in": bss_sdr(mix[:, 0].double(), clean), "si_sdr_in": si_sdr(mix[:, 0].double(), clean)}
    for name, v in (("video", video), ("mean_face", blank(video, "mean")), ("black", blank(video, "black"))):
        out = torch.cat([model(mix[i:i + 8], v[i:i + 8]) for i in range(0, len(items), 8)])[:, 0].double()
        rows[f"sdr_{name}"] = bss_sdr(out, clean)
        rows[f"si_sdr_{name}"] = si_sdr(out, clean)
        rows[f"sdri_{name}"] = rows[f"sdr_{name}"] - rows["sdr_in"]
        rows[f"si_sdri_{name}"] = rows[f"si_sdr_{name}"] - rows["si_sdr_in"]
    faces = np.array([it["face"] for it in items])

    def summary(sel: np.ndarray) -> dict:
        return {k: round(float(v[torch.from_numpy(sel)].mean()), 2) for k, v in rows.items()}

    out = {"overall": summary(np.ones(len(items), bool)), "n_mixtures": len(items)}
    out["per_face"] = {f: summary(faces == f) for f in sorted(set(faces.tolist()))}
    gain = rows["sdri_video"] - rows["sdri_mean_face"]
    out["video_gain_db"] = {"mean": round(float(gain.mean()), 2), "min": round(float(gain.min()), 2),
                            "fraction_positive": round(float((gain > 0).double().mean()), 3)}
    return out


@torch.no_grad()
def recalibrate_batch_norm(model: AVEnhancer, pool: Pool, cfg: TrainConfig, rng: np.random.Generator) -> int:
    """Re-estimate the BatchNorm statistics of the visual trunk on ``cfg.bn_batches`` training batches.

    The frames of a clip are strongly correlated and the weights move fast, so the running averages
    kept during training (torchvision's MobileNetV3 uses momentum 0.01) lag behind the batch statistics
    the model was trained with; in evaluation mode the model then loses most of what it learned from the
    video. Here the statistics are reset and averaged over whole batches (cumulative average), the
    weights untouched. Returns the number of BatchNorm layers updated.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    model.train()
    for _ in range(cfg.bn_batches):
        mix, video, _target = pool.batch(cfg, rng)
        model(mix, video)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.eval()
    return len(layers)


def neg_snr(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Training loss: minus the SNR (dB) of the estimate, mean over the batch. Shape: ``(b, 1, t)`` x 2 -> ()."""
    err = (estimate - clean).pow(2).sum(-1)
    return -(10 * torch.log10((clean.pow(2).sum(-1) + 1e-8) / (err + 1e-8))).mean()


def write_example(cfg: TrainConfig, assets: Path) -> dict:
    """A held-out mixture (``example_s`` long) with the target's face as ``example.mp4``, its clean target and
    the generator's mouth boxes."""
    gen = AVMixtures(range(*cfg.eval_speakers),
                     config=AVMixtureConfig(sample_rate=cfg.sample_rate, fps=cfg.fps, duration_s=cfg.example_s,
                                            sir_db=cfg.eval_sir_db, faces=("astronaut",), frame_size=cfg.frame_size),
                     seed=cfg.seed + 2000, speaker_seed=cfg.speaker_seed)
    ex = gen.example(0)
    write_video(assets / "example.mp4", ex.to_video_clip("mixture"), crf=23)
    save_audio(assets / "clean.wav", ex.target, cfg.sample_rate)
    doc = {"fps": ex.fps, "frame_size": list(ex.frames.shape[1:3]), "units": "frame pixels, x0 y0 x1 y1",
           "mouth_boxes": [[round(float(v), 2) for v in row] for row in ex.mouth_boxes.tolist()],
           "target_speaker": ex.target_speaker, "interferer_speaker": ex.interferer_speaker, "sir_db": ex.sir_db,
           "face": ex.face, "generator": {"class": "avxai.data.av_mixtures.AVMixtures",
                                          "speakers": list(cfg.eval_speakers), "seed": cfg.seed + 2000, "index": 0}}
    (assets / "mouth_boxes.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg.seed)  # parameter initialisation
    rng = np.random.default_rng([cfg.seed, 0])
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    pool = Pool(cfg)
    heldout = heldout_set(cfg)
    t_data = time.perf_counter() - t0
    print(f"rendered {len(pool)} training clips ({cfg.clip_s} s, with faces) and {len(heldout)} held-out mixtures "
          f"in {t_data:.1f} s", flush=True)

    model = AVEnhancer(cfg.model_config())
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    history, losses = [], []
    t1, c1 = time.perf_counter(), time.process_time()
    step = 0
    while step < cfg.steps:
        elapsed = time.perf_counter() - t1
        progress = max(step / cfg.steps, elapsed / cfg.max_train_s)
        if progress >= 1.0:
            print(f"time budget max_train_s={cfg.max_train_s} reached after {step} steps", flush=True)
            break
        for group in opt.param_groups:  # warm-up, then cosine decay over steps or time, whichever ends first
            group["lr"] = cfg.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * progress))
        model.train()
        mix, video, target = pool.batch(cfg, rng)
        loss = neg_snr(model(mix, video), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 25 == 0 or step == cfg.steps:
            history.append({"step": step, "loss": round(float(np.mean(losses)), 3),
                            "seconds": round(time.perf_counter() - t1, 1)})
            print(f"step {step}/{cfg.steps} loss (-SNR dB) {np.mean(losses):.2f} "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
            losses = []
    n_bn = recalibrate_batch_norm(model, pool, cfg, np.random.default_rng([cfg.seed, 0xB7]))
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    print(f"re-estimated the statistics of {n_bn} BatchNorm layers on {cfg.bn_batches} batches", flush=True)

    args.assets.mkdir(parents=True, exist_ok=True)
    metrics = {"heldout": evaluate(model, heldout), "n_parameters": n_params, "steps_done": step,
               "train_seconds": round(t_train, 1), "train_cpu_seconds": round(c_train, 1),
               "torch_threads": torch.get_num_threads(), "data_seconds": round(t_data, 1)}
    example = write_example(cfg, args.assets)
    ckpt = save_av_enhancer(model, args.assets / "av_enhancer.pt",
                            speakers={"generator": "avxai.data.synthetic.SyntheticSpeaker",
                                      "speaker_seed": cfg.speaker_seed, "train_ids": [0, cfg.train_speakers],
                                      "heldout_ids": list(cfg.eval_speakers)},
                            example={k: example[k] for k in ("target_speaker", "interferer_speaker", "sir_db", "face")},
                            train=asdict(cfg), metrics=metrics)
    reloaded = evaluate(load_av_enhancer(ckpt), heldout)["overall"]  # the saved file, as a user loads it
    if abs(reloaded["sdr_video"] - metrics["heldout"]["overall"]["sdr_video"]) > 1e-2:
        raise RuntimeError("the reloaded checkpoint does not reproduce the trained model's scores")
    metrics["checkpoint_bytes"] = ckpt.stat().st_size
    metrics["history"] = history
    metrics["config"] = asdict(cfg)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    o = metrics["heldout"]["overall"]
    print(f"\nheld-out ({metrics['heldout']['n_mixtures']} mixtures of {cfg.eval_s} s, SIR {cfg.eval_sir_db} dB, "
          "new speakers)")
    print(f"{'':>10} {'SDR in':>7} {'video':>7} {'mean face':>10} {'black':>7}   (SDR improvement, dB)")
    for name, r in {"overall": o, **metrics["heldout"]["per_face"]}.items():
        print(f"{name:>10} {r['sdr_in']:7.2f} {r['sdri_video']:7.2f} {r['sdri_mean_face']:10.2f} {r['sdri_black']:7.2f}")
    g = metrics["heldout"]["video_gain_db"]
    print(f"video vs mean face: {g['mean']:+.2f} dB on average, positive on {100 * g['fraction_positive']:.0f} % "
          "of the mixtures")
    print(f"\n{n_params} parameters, {step} steps in {t_train:.0f} s wall ({c_train:.0f} CPU-s, "
          f"{torch.get_num_threads()} thread(s)) + {t_data:.0f} s data; checkpoint "
          f"{metrics['checkpoint_bytes'] / 2**20:.2f} MiB at {ckpt}; metrics in {args.out / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
