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
The loop, its schedule, the loss and the BatchNorm re-estimation are :mod:`avxai.training`'s.

Outputs
-------
``<assets>/av_enhancer.pt`` + ``av_enhancer.json``   state dict and config (model, data, metrics)
``<assets>/example.mp4``        a held-out mixture with the target's face (h264 + aac), 112x112, 2 s
``<assets>/clean.wav``          the clean target of the example (same length as the mp4's audio)
``<assets>/mouth_boxes.json``   the generator's mouth box per frame (x0, y0, x1, y1, frame pixels)
``<out>/metrics.json``          everything measured
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from avxai.data.av_mixtures import AVMixtureConfig, AVMixtures, crop_faces
from avxai.data.speech_mixtures import SpeechDataConfig
from avxai.io.audio import save_audio
from avxai.io.video import write_video
from avxai.models.av_enhancement import AVEnhancer, AVEnhancerConfig
from avxai.training import (TrainingConfig, check_reproduced, count_parameters, neg_snr, parse_train_args,
                            recalibrate_batch_norm, report_run, run_batched, save_and_reload, sdr_rows, start_run,
                            sub_config, summarise, timed)

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TrainConfig(TrainingConfig, AVEnhancerConfig, SpeechDataConfig):
    """The loop's fields (:class:`~avxai.training.TrainingConfig`), the model's (:class:`AVEnhancerConfig`), the
    speakers' (:class:`SpeechDataConfig`: a training utterance is a target clip with its talking face) and the
    mixtures' and faces' below, flat as in config.yaml (which sets this recipe's values and says what each one
    does)."""

    sir_db: tuple[float, float] = (-3.0, 3.0)  # target over interferer, dB
    noise_prob: float = 0.3
    snr_db: tuple[float, float] = (10.0, 30.0)  # target over noise, dB
    jitter_px: float = 3.0  # face-crop box shift (frame pixels) per training clip
    jitter_scale: float = 0.05
    frame_jitter_px: float = 0.8
    eval_mixtures: int = 24
    eval_sir_db: float = 0.0
    example_s: float = 2.0
    frame_size: tuple[int, int] = (112, 112)  # (height, width) pixels
    bn_batches: int = 50  # batches that re-estimate the BatchNorm statistics

    def __post_init__(self):
        for part in (TrainingConfig, AVEnhancerConfig, SpeechDataConfig):
            part.__post_init__(self)
        if self.eval_mixtures < 1 or self.bn_batches < 1:
            raise ValueError(f"eval_mixtures and bn_batches must be >= 1, got {self.eval_mixtures}, {self.bn_batches}")
        if abs(self.crop_s * self.fps - round(self.crop_s * self.fps)) > 1e-6:
            raise ValueError(f"crop_s * fps must be a whole number of frames, got {self.crop_s * self.fps}")
        self.check_heldout_ids("eval_speakers", self.eval_speakers, at_least=2)
        if not 0 <= self.noise_prob <= 1:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")

    def mixture_config(self, duration_s: float, sir_db, snr_db=None) -> AVMixtureConfig:
        return AVMixtureConfig(sample_rate=self.sample_rate, fps=self.fps, duration_s=duration_s, sir_db=sir_db,
                               snr_db=snr_db, frame_size=self.frame_size)


DEBUG_OVERRIDES = dict(train_speakers=3, train_utterances=1, utterance_s=1.0, eval_speakers=[100, 102], eval_mixtures=2,
                       eval_s=1.0, steps=2, batch_size=2, audio_dim=16, hidden=16, visual_dim=8, bn_batches=2)


class Pool:
    """Target utterances with their face crops (uint8), rendered once; batches are mixed from them."""

    def __init__(self, cfg: TrainConfig):
        gen = AVMixtures(range(cfg.train_speakers), config=cfg.mixture_config(cfg.utterance_s, sir_db=0.0),
                         seed=cfg.seed, speaker_seed=cfg.speaker_seed)
        rng = np.random.default_rng([cfg.seed, 0xC80])
        self.speech, self.crops, self.speaker = [], [], []
        for i in range(cfg.train_speakers * cfg.train_utterances):
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
    clean = torch.stack([it["target"] for it in items])[:, 0]
    video = torch.stack([it["video"] for it in items])
    rows = dict(zip(("sdr_in", "si_sdr_in"), sdr_rows(mix[:, 0], clean)))
    for name, v in (("video", video), ("mean_face", blank(video, "mean")), ("black", blank(video, "black"))):
        rows[f"sdr_{name}"], rows[f"si_sdr_{name}"] = sdr_rows(run_batched(model, mix, v, batch=8)[:, 0], clean)
        rows[f"sdri_{name}"] = rows[f"sdr_{name}"] - rows["sdr_in"]
        rows[f"si_sdri_{name}"] = rows[f"si_sdr_{name}"] - rows["si_sdr_in"]
    faces = [it["face"] for it in items]
    out = {"overall": summarise(rows), "n_mixtures": len(items),
           "per_face": dict(sorted(summarise(rows, faces).items()))}
    gain = rows["sdri_video"] - rows["sdri_mean_face"]
    out["video_gain_db"] = {"mean": round(float(gain.mean()), 2), "min": round(float(gain.min()), 2),
                            "fraction_positive": round(float((gain > 0).double().mean()), 3)}
    return out


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


def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse_train_args(TrainConfig, argv, HERE, doc=__doc__, debug=DEBUG_OVERRIDES)
    rng = start_run(cfg.seed, cfg.threads)
    (pool, heldout), t_data = timed(lambda: (Pool(cfg), heldout_set(cfg)))
    print(f"rendered {len(pool)} training clips ({cfg.utterance_s} s, with faces) and {len(heldout)} held-out mixtures "
          f"in {t_data:.1f} s", flush=True)

    model = AVEnhancer(sub_config(AVEnhancerConfig, cfg))
    run = cfg.fit(model, lambda: pool.batch(cfg, rng), neg_snr, loss_label="-SNR dB")
    bn_rng = np.random.default_rng([cfg.seed, 0xB7])
    c2 = time.process_time()
    n_bn, bn_s = timed(lambda: recalibrate_batch_norm(model, lambda: pool.batch(cfg, bn_rng), cfg.bn_batches))
    run = replace(run, wall_s=run.wall_s + bn_s, cpu_s=run.cpu_s + time.process_time() - c2)  # training + BatchNorm
    print(f"re-estimated the statistics of {n_bn} BatchNorm layers on {cfg.bn_batches} batches", flush=True)

    metrics = {"heldout": evaluate(model, heldout), "n_parameters": count_parameters(model), "steps_done": run.steps,
               "train_seconds": round(run.wall_s, 1), "train_cpu_seconds": round(run.cpu_s, 1),
               "torch_threads": torch.get_num_threads(), "data_seconds": round(t_data, 1)}
    args.assets.mkdir(parents=True, exist_ok=True)
    example = write_example(cfg, args.assets)
    ckpt, reloaded = save_and_reload(
        model, args.assets / "av_enhancer.pt", architecture="av-enhancer", kwargs=model.config,
        extra={"speakers": {"generator": "avxai.data.synthetic.SyntheticSpeaker", "speaker_seed": cfg.speaker_seed,
                            "train_ids": [0, cfg.train_speakers], "heldout_ids": list(cfg.eval_speakers)},
               "example": {k: example[k] for k in ("target_speaker", "interferer_speaker", "sir_db", "face")},
               "train": asdict(cfg), "metrics": metrics})
    check_reproduced("sdr_video", evaluate(reloaded, heldout)["overall"]["sdr_video"],
                     metrics["heldout"]["overall"]["sdr_video"], 1e-2)
    o = metrics["heldout"]["overall"]
    print(f"\nheld-out ({metrics['heldout']['n_mixtures']} mixtures of {cfg.eval_s} s, SIR {cfg.eval_sir_db} dB, "
          "new speakers)")
    print(f"{'':>10} {'SDR in':>7} {'video':>7} {'mean face':>10} {'black':>7}   (SDR improvement, dB)")
    for name, r in {"overall": o, **metrics["heldout"]["per_face"]}.items():
        print(f"{name:>10} {r['sdr_in']:7.2f} {r['sdri_video']:7.2f} {r['sdri_mean_face']:10.2f} {r['sdri_black']:7.2f}")
    g = metrics["heldout"]["video_gain_db"]
    print(f"video vs mean face: {g['mean']:+.2f} dB on average, positive on {100 * g['fraction_positive']:.0f} % "
          "of the mixtures")
    return report_run(args.out, metrics, run=run, config=cfg, data_s=t_data, ckpt=ckpt)


if __name__ == "__main__":
    main(sys.argv[1:])
