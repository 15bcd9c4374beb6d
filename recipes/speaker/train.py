"""Train the reference SpeakerNet on synthetic speakers and write the bundled assets.

    python recipes/speaker/train.py                       # full run (17 min for the committed model on 2 cores)
    python recipes/speaker/train.py --debug               # seconds; writes only under --out
    python recipes/speaker/train.py --epochs 4 --set batch_size=16 --out /tmp/spk

Outputs
-------
``<out>/metrics.json``                 held-out identification accuracy (clean and noisy), probe, timing
``<assets>/speaker_net.pt`` + ``.json`` state dict and config (model kwargs, speakers, metrics)
``<assets>/aba.wav``, ``aba_segments.json``  A-B-A demo utterance (A and B are training speakers)
``<assets>/enroll_A.wav``               another utterance of speaker A (for verification)

``<assets>`` is ``avxai/assets/speaker`` for a full run and ``<out>/assets`` for ``--debug``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from avxai.data import SyntheticSpeaker, add_noise, build_aba, save_segments
from avxai.models import SpeakerNet, load_state_dict_checked
from avxai.training import (Budget, count_parameters, parse_train_args, save_and_reload, start_run, train_steps,
                            write_metrics)

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of the recipe; config.yaml sets them (and says more about each)."""

    seed: int = 0  # utterance seeds, batch draws and parameter initialisation
    # data: SyntheticSpeaker ids 0..n_speakers-1 of population speaker_seed
    n_speakers: int = 16  # classes
    speaker_seed: int = 0
    sample_rate: int = 16000  # Hz
    train_utterances: int = 40  # per speaker, train_utterance_s seconds each; crops are cut from them
    train_utterance_s: float = 2.5
    crop_s: tuple[float, float] = (1.0, 2.0)  # training crop length range, seconds (one length per batch)
    eval_utterances: int = 12  # held-out utterances per speaker (other seeds)
    eval_utterance_s: float = 1.5
    # augmentation: probabilities per training example
    p_mix: float = 0.4  # another speaker over a span; soft label by time fraction
    mix_fraction: tuple[float, float] = (0.15, 0.45)  # that span's share of the crop (< 0.5)
    p_drop: float = 0.3  # silences: 1-3 zeroed chunks
    p_tfmask: float = 0.5  # time-frequency masking as an explainer's perturbation (see tf_mask)
    p_noise: float = 0.5  # white or pink noise at snr_db
    snr_db: tuple[float, float] = (10.0, 35.0)
    # model: SpeakerNet's keyword arguments (with n_speakers and sample_rate)
    n_mels: int = 40
    n_fft: int = 512  # samples
    hop_length: int = 160  # samples
    channels: int = 128
    embedding_dim: int = 128
    pooling: str = "attentive"
    log_floor: float = 0.1  # added to mel power before the log
    # optimisation: AdamW with a one-cycle schedule (torch's OneCycleLR, 15 % warm-up)
    epochs: int = 12  # an epoch = steps_per_epoch batches, then a held-out accuracy
    steps_per_epoch: int = 50
    batch_size: int = 32
    lr: float = 0.003  # peak learning rate
    weight_decay: float = 0.0001
    threads: int = 2  # torch threads (1 is faster on a busy machine)
    # bundled demo audio
    aba_speakers: tuple[int, int] = (0, 1)  # class indices of speakers A and B
    aba_durations: tuple[float, float, float] = (1.0, 1.0, 1.0)  # seconds of A, B, A
    aba_seed: int = 0
    enroll_s: float = 3.0  # another utterance of A (verification), seconds

    def __post_init__(self):
        for name in ("n_speakers", "train_utterances", "eval_utterances", "epochs", "steps_per_epoch", "batch_size",
                     "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_speakers < 2:
            raise ValueError(f"n_speakers must be >= 2, got {self.n_speakers}")
        lo, hi = self.crop_s
        if not 0 < lo <= hi <= self.train_utterance_s:
            raise ValueError(f"crop_s must satisfy 0 < lo <= hi <= train_utterance_s={self.train_utterance_s}, "
                             f"got {self.crop_s}")
        if lo * self.sample_rate < self.n_fft:
            raise ValueError(f"crop_s[0]={lo} s is shorter than n_fft={self.n_fft} samples; raise crop_s")
        for name in ("p_mix", "p_drop", "p_tfmask", "p_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0 < self.mix_fraction[0] <= self.mix_fraction[1] < 0.5:
            raise ValueError(f"mix_fraction must satisfy 0 < lo <= hi < 0.5 (the label is the dominant speaker), "
                             f"got {self.mix_fraction}")
        a, b = self.aba_speakers
        if a == b or not (0 <= a < self.n_speakers and 0 <= b < self.n_speakers):
            raise ValueError(f"aba_speakers must be two different class indices below n_speakers={self.n_speakers}, "
                             f"got {self.aba_speakers}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def model_kwargs(self) -> dict:
        return dict(n_speakers=self.n_speakers, sample_rate=self.sample_rate, n_mels=self.n_mels, n_fft=self.n_fft,
                    hop_length=self.hop_length, channels=self.channels, embedding_dim=self.embedding_dim,
                    pooling=self.pooling, log_floor=self.log_floor)


DEBUG_OVERRIDES = dict(n_speakers=4, train_utterances=4, eval_utterances=2, epochs=1, steps_per_epoch=3,
                       batch_size=8, channels=32, embedding_dim=32)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def utterance_seeds(cfg: TrainConfig, split: int, n: int) -> list[int]:
    """Utterance seeds for a split (1 = train, 2 = held-out, 3 = demo audio); the splits do not overlap."""
    base = int(np.random.default_rng([cfg.seed, split]).integers(0, 2**24))
    return [(base + j) * 4 + split for j in range(n)]  # residue mod 4 = split: disjoint across splits


def generate(speakers: list[SyntheticSpeaker], seeds: list[int], duration_s: float, sr: int) -> torch.Tensor:
    """Shape: ``(n_speakers, len(seeds), samples)``."""
    return torch.stack([torch.cat([s.utterance(duration_s, sr, seed=k) for k in seeds]) for s in speakers])


_WINDOW = torch.hann_window(512)


def tf_mask(x: torch.Tensor, owner: torch.Tensor, n_spk: int, rng: np.random.Generator, sample_rate: int
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mask a random part of the STFT magnitude (phase kept), as an explainer's perturbation does.

    ``owner`` ``(time,)`` holds the class of each sample. Masked cells become zero (p = 0.7) or a time blur
    of the magnitude. With zeroing, the new soft target is the share of the kept *active* cells
    (within 40 dB of the loudest) that belong to each speaker, uniform when almost nothing active is kept;
    ``None`` means "target unchanged".

    Shape: ``(time,)`` -> ``(time,)``, target ``(n_spk,)``.
    """
    n = x.shape[-1]
    spec = torch.stft(x, 512, 128, window=_WINDOW, center=True, return_complex=True)
    mag = spec.abs()
    n_freq, n_frames = mag.shape
    # smooth blobs like an explainer's masks: a random binary grid of 1-32 bands x 30-300 ms cells, upsampled
    keep = rng.uniform(0.05, 0.6)
    cf = 1 if rng.random() < 0.2 else int(rng.integers(2, 33))
    ct = max(2, int(n_frames * 128 / sample_rate / rng.uniform(0.03, 0.3)))  # cells of 30-300 ms
    coarse = torch.from_numpy(rng.random((cf, ct))).float()
    coarse = (coarse >= torch.quantile(coarse.flatten(), 1.0 - keep)).float()
    m = torch.nn.functional.interpolate(coarse[None, None], size=(n_freq, n_frames), mode="bilinear",
                                        align_corners=False)[0, 0]
    if rng.random() < 0.7:
        base, target = torch.zeros_like(mag), torch.zeros(n_spk)
        active = mag > mag.max() * 10 ** (-40 / 20)
        frame_owner = owner[(torch.arange(n_frames) * 128).clamp(max=n - 1)]
        kept = (m * active).sum(dim=0)
        total = float(kept.sum())
        if total < 0.02 * float(active.sum()):
            target += 1.0 / n_spk
        else:
            target.index_add_(0, frame_owner, kept / total)
    else:
        k = torch.exp(-0.5 * (torch.arange(-24, 25) / rng.uniform(4.0, 8.0)) ** 2)
        base = torch.nn.functional.conv1d(torch.nn.functional.pad(mag[:, None], (24, 24), mode="replicate"),
                                          (k / k.sum()).view(1, 1, -1))[:, 0]
        target = None
    out = torch.polar(base + m * (mag - base), spec.angle())
    return torch.istft(out, 512, 128, window=_WINDOW, center=True, length=n), target


def make_batch(pool: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of augmented crops and soft targets. Shape: ``(batch, 1, time)``, ``(batch, n_speakers)``."""
    n_spk, n_utt, total = pool.shape
    sr = cfg.sample_rate
    length = int(rng.uniform(*cfg.crop_s) * sr)

    def crop(spk: int) -> torch.Tensor:
        start = int(rng.integers(0, total - length + 1))
        return pool[spk, rng.integers(n_utt), start:start + length]

    xs, ys = [], torch.zeros(cfg.batch_size, n_spk)
    for i in range(cfg.batch_size):
        spk = int(rng.integers(n_spk))
        x = crop(spk).clone()
        owner = torch.full((length,), spk, dtype=torch.long)
        ys[i, spk] = 1.0
        if rng.random() < cfg.p_mix:  # another speaker for a span; soft label by time fraction
            other = int((spk + rng.integers(1, n_spk)) % n_spk)
            frac = rng.uniform(*cfg.mix_fraction)
            span = int(frac * length)
            s0 = int(rng.integers(0, length - span + 1))
            ramp = min(80, span // 2)
            piece = crop(other)[:span].clone()
            if ramp:
                w = torch.linspace(0.0, 1.0, ramp)
                piece[:ramp] *= w
                piece[-ramp:] *= w.flip(0)
                x[s0:s0 + ramp] *= w.flip(0)
                x[s0 + span - ramp:s0 + span] *= w
                x[s0 + ramp:s0 + span - ramp] = 0.0
            else:
                x[s0:s0 + span] = 0.0
            x[s0:s0 + span] += piece
            owner[s0:s0 + span] = other
            ys[i, spk], ys[i, other] = 1.0 - frac, frac
        if rng.random() < cfg.p_drop:  # silences: zero 1-3 chunks, at most ~60% in all
            for _ in range(int(rng.integers(1, 4))):
                d = int(rng.uniform(0.05, 0.2) * length)
                s0 = int(rng.integers(0, length - d + 1))
                x[s0:s0 + d] = 0.0
        if rng.random() < cfg.p_tfmask:  # time-frequency masking as in an explanation
            x, target = tf_mask(x, owner, n_spk, rng, cfg.sample_rate)
            if target is not None:
                ys[i] = target
        if rng.random() < cfg.p_noise and x.abs().max() > 0:
            kind = "white" if rng.random() < 0.5 else "pink"
            x = add_noise(x.unsqueeze(0), float(rng.uniform(*cfg.snr_db)), seed=int(rng.integers(2**31 - 1)),
                          kind=kind)[0]
        x = x * float(10.0 ** (rng.uniform(-10.0, 3.0) / 20.0))  # level is not a speaker cue
        xs.append(x)
    return torch.stack(xs).unsqueeze(1), ys


@torch.no_grad()
def accuracy(model: SpeakerNet, data: torch.Tensor, batch: int = 64) -> float:
    """Top-1 accuracy on ``data`` ``(n_speakers, n_utt, time)`` (label = first index)."""
    model.eval()
    n_spk, n_utt, t = data.shape
    x = data.reshape(-1, 1, t)
    y = torch.arange(n_spk).repeat_interleave(n_utt)
    pred = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).float().mean())


@torch.no_grad()
def probe_aba(model: SpeakerNet, wav: torch.Tensor, segments, target: int, sr: int) -> dict:
    """Logit of ``target`` on the ABA utterance, with A's and with B's turns zeroed."""
    model.eval()
    out = {}
    for name, zero_label in (("full", None), ("A_zeroed", "A"), ("B_zeroed", "B")):
        x = wav.clone()
        for s in segments:
            if s.label == zero_label:
                x[..., int(round(s.start_s * sr)):int(round(s.end_s * sr))] = 0.0
        logits = model(x.view(1, 1, -1))[0]
        out[name] = {"logit_A": float(logits[target]), "prob_A": float(logits.softmax(0)[target]),
                     "argmax": int(logits.argmax())}
    out["drop_A_zeroed"] = out["full"]["logit_A"] - out["A_zeroed"]["logit_A"]
    out["drop_B_zeroed"] = out["full"]["logit_A"] - out["B_zeroed"]["logit_A"]
    return out


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse_train_args(TrainConfig, argv, HERE, doc=__doc__, debug=DEBUG_OVERRIDES, length="epochs",
                                 extra=lambda p: p.add_argument("--init", type=Path, help="start from this checkpoint "
                                                                "(same architecture) instead of scratch"))
    rng = start_run(cfg.seed, cfg.threads)
    sr = cfg.sample_rate
    t0 = time.perf_counter()

    speakers = [SyntheticSpeaker(i, cfg.speaker_seed) for i in range(cfg.n_speakers)]
    train = generate(speakers, utterance_seeds(cfg, 1, cfg.train_utterances), cfg.train_utterance_s, sr)
    held_seeds = utterance_seeds(cfg, 2, cfg.eval_utterances)
    held = generate(speakers, held_seeds, cfg.eval_utterance_s, sr)
    held_noisy = torch.stack([
        add_noise(held[s], 15.0, seed=1000 + s, kind="pink") for s in range(cfg.n_speakers)])
    t_data = time.perf_counter() - t0
    print(f"generated {train.shape[0] * train.shape[1]} training utterances in {t_data:.1f} s", flush=True)

    model = SpeakerNet(**cfg.model_kwargs())
    if args.init is not None:
        load_state_dict_checked(model, args.init)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.15)

    def log_epoch(step: int, loss: float, seconds: float) -> dict:
        epoch, acc = step // cfg.steps_per_epoch, accuracy(model, held)
        print(f"epoch {epoch}/{cfg.epochs} loss {loss:.3f} held-out acc {acc:.3f} ({seconds:.0f} s)", flush=True)
        return {"epoch": epoch, "loss": loss, "heldout_accuracy": acc}

    run = train_steps(model, opt, lambda: make_batch(train, cfg, rng), F.cross_entropy, Budget(total_steps),
                      scheduler=sched, log_every=cfg.steps_per_epoch, on_log=log_epoch)
    model.eval()

    # demo audio: A-B-A with two training speakers, and an enrollment utterance of A
    a, b = cfg.aba_speakers
    aba, segments = build_aba(speakers[a], speakers[b], cfg.aba_durations, sr, seed=cfg.aba_seed)
    enroll = speakers[a].utterance(cfg.enroll_s, sr, seed=utterance_seeds(cfg, 3, 1)[0])
    args.assets.mkdir(parents=True, exist_ok=True)
    sf.write(args.assets / "aba.wav", aba[0].numpy(), sr, subtype="PCM_16")
    sf.write(args.assets / "enroll_A.wav", enroll[0].numpy(), sr, subtype="PCM_16")
    save_segments(args.assets / "aba_segments.json", segments, metadata={
        "sample_rate": sr, "speaker_seed": cfg.speaker_seed, "A": {"class_index": a, "speaker_id": a},
        "B": {"class_index": b, "speaker_id": b}, "seed": cfg.aba_seed, "target_class": a,
        "model": "speaker_net.pt"})

    metrics = {
        "heldout_accuracy": accuracy(model, held),
        "heldout_accuracy_pink15dB": accuracy(model, held_noisy),
        "heldout_utterances": int(held.shape[0] * held.shape[1]),
        "heldout_utterance_s": cfg.eval_utterance_s,
        "n_parameters": count_parameters(model),
        "train_seconds": round(run.wall_s, 1),
        "data_seconds": round(t_data, 1),
        "history": run.history,
    }
    # the saved files are probed exactly as a user will load them
    ckpt, reloaded = save_and_reload(model, args.assets / "speaker_net.pt", architecture="speakernet",
                                     kwargs=model.config, extra={
        "speakers": {"generator": "avxai.data.synthetic.SyntheticSpeaker", "speaker_seed": cfg.speaker_seed,
                     "speaker_ids": list(range(cfg.n_speakers))},
        "heldout_utterance_seeds": held_seeds,
        "train": asdict(cfg),
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
    })
    wav, file_sr = sf.read(args.assets / "aba.wav", dtype="float32")
    metrics["probe"] = probe_aba(reloaded, torch.from_numpy(wav), segments, a, file_sr)
    metrics["checkpoint_bytes"] = ckpt.stat().st_size
    metrics["config"] = asdict(cfg)
    write_metrics(args.out / "metrics.json", metrics)
    summary = {k: metrics[k] for k in ("heldout_accuracy", "heldout_accuracy_pink15dB", "n_parameters",
                                       "train_seconds", "checkpoint_bytes")}
    summary["probe_logit_A"] = {k: round(metrics["probe"][k]["logit_A"], 3) for k in ("full", "A_zeroed", "B_zeroed")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {ckpt} and demo audio to {args.assets}; metrics in {args.out / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
