"""Train the reference speech enhancer (a T-F masking network) on generated noisy speech.

    python recipes/enhancement/train.py            # full run (9.4 min for the committed model on 2 CPU cores; docs/results/enhancement_separation.md)
    python recipes/enhancement/train.py --debug    # seconds; writes only under --out
    python recipes/enhancement/train.py --steps 200 --set batch_size=8 --out /tmp/enh

Noise: white, babble (other synthetic speakers) and band-limited Gaussian noise, SNR drawn from
``snr_db``. Held-out mixtures use speakers, babble talkers and utterance seeds never seen in
training. The script prints (and writes to ``<out>/metrics.json`` and the checkpoint's JSON) the
SDR (BSS-eval v3, fast_bss_eval, 512 taps) and SI-SDR of the noisy input and of the enhanced
output against the clean speech, and their improvement, overall, per noise kind and per SNR.

Outputs
-------
``<assets>/enhancer.pt`` + ``enhancer.json``   state dict and config (model, data, metrics)
``<assets>/noisy.wav``, ``clean.wav``          a held-out babble mixture at 0 dB and its clean speech
``<out>/metrics.json``                         everything measured
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

from avxai.data.speech_mixtures import UtterancePool, enhancement_batch, noisy_utterance
from avxai.data.synthetic import SyntheticSpeaker
from avxai.io.audio import save_audio
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer, load_enhancer, save_enhancer
from avxai.scorers.sdr import bss_sdr, si_sdr
from avxai.recipe_config import add_train_arguments, config_from_dict, train_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of the recipe (see config.yaml for what each one does)."""

    seed: int = 0
    sample_rate: int = 8000
    speaker_seed: int = 0
    train_speakers: int = 40
    train_utterances: int = 6
    utterance_s: float = 4.0
    crop_s: float = 1.0
    snr_db: tuple[float, float] = (-5.0, 10.0)
    noise_kinds: tuple[str, ...] = ("white", "babble", "band")
    eval_speakers: tuple[int, int] = (100, 110)
    babble_speakers: tuple[int, int] = (200, 220)
    eval_snr_db: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0)
    eval_per_cell: int = 8
    eval_s: float = 2.0
    n_fft: int = 256
    hop_length: int = 64
    hidden: int = 96
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    steps: int = 2000
    batch_size: int = 16
    lr: float = 0.002
    threads: int = 1
    max_cpu_s: float = 900.0
    max_wall_s: float = 900.0

    def __post_init__(self):
        for name in ("train_speakers", "train_utterances", "eval_per_cell", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.train_speakers < 2:
            raise ValueError("train_speakers must be >= 2 (babble needs talkers other than the target)")
        if not 0 < self.crop_s <= self.utterance_s:
            raise ValueError(f"crop_s must be in (0, utterance_s={self.utterance_s}], got {self.crop_s}")
        for name in ("eval_speakers", "babble_speakers"):
            lo, hi = getattr(self, name)
            if not (self.train_speakers <= lo < hi):
                raise ValueError(f"{name} [{lo}, {hi}) must be a non-empty id range above the training ids "
                                 f"0..{self.train_speakers - 1}")
        unknown = set(self.noise_kinds) - {"white", "babble", "band"}
        if unknown or not self.noise_kinds:
            raise ValueError(f"noise_kinds must be a non-empty subset of white, babble, band; got {self.noise_kinds}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.lr <= 0 or self.max_cpu_s <= 0 or self.max_wall_s <= 0:
            raise ValueError(f"lr, max_cpu_s and max_wall_s must be > 0, got {self.lr}, {self.max_cpu_s}, "
                             f"{self.max_wall_s}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from_dict(cls, d)

    def model_config(self) -> EnhancerConfig:
        return EnhancerConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                              hidden=self.hidden, kernel_size=self.kernel_size, dilations=self.dilations)


DEBUG_OVERRIDES = dict(train_speakers=4, train_utterances=2, eval_speakers=[100, 102], babble_speakers=[200, 203],
                       eval_snr_db=[0.0], eval_per_cell=1, steps=3, batch_size=4, hidden=16, dilations=[1, 2])


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p, config=HERE / "config.yaml", out=REPO / "avxai-out" / "enhancement_train",
                        assets="assets/enhancement", length="steps")
    args = p.parse_args(argv)
    cfg = train_config(p, args, TrainConfig, debug_overrides=DEBUG_OVERRIDES, assets=REPO / "assets" / "enhancement",
                       length="steps")
    return cfg, args


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def heldout_set(cfg: TrainConfig) -> list[dict]:
    """Held-out noisy utterances: every (noise kind, SNR) cell, ``eval_per_cell`` each, new speakers."""
    speakers = [SyntheticSpeaker(i, cfg.speaker_seed) for i in range(*cfg.eval_speakers)]
    babble = UtterancePool(range(*cfg.babble_speakers), cfg.sample_rate, utterances=2,
                           utterance_s=max(cfg.eval_s, 1.0) + 1.0, seed=cfg.seed + 7, speaker_seed=cfg.speaker_seed)
    items, k = [], 0
    for kind in cfg.noise_kinds:
        for snr in cfg.eval_snr_db:
            for _ in range(cfg.eval_per_cell):
                spk = speakers[k % len(speakers)]
                m = noisy_utterance(spk, cfg.eval_s, cfg.sample_rate, snr, kind, seed=10_000 + k, pool=babble)
                items.append({"kind": kind, "snr_db": snr, "noisy": m.noisy, "clean": m.clean})
                k += 1
    return items


@torch.no_grad()
def evaluate(model: MaskingEnhancer, items: list[dict]) -> dict:
    """Mean SDR / SI-SDR (dB) of input and output, and improvements: overall, per kind, per SNR."""
    model.eval()
    noisy = torch.stack([it["noisy"] for it in items])
    clean = torch.stack([it["clean"] for it in items])[:, 0]
    enhanced = torch.cat([model(noisy[i:i + 16]) for i in range(0, len(noisy), 16)])[:, 0]
    rows = {
        "sdr_in": bss_sdr(noisy[:, 0].double(), clean.double()),
        "sdr_out": bss_sdr(enhanced.double(), clean.double()),
        "si_sdr_in": si_sdr(noisy[:, 0].double(), clean.double()),
        "si_sdr_out": si_sdr(enhanced.double(), clean.double()),
    }
    rows["sdr_improvement"] = rows["sdr_out"] - rows["sdr_in"]
    rows["si_sdr_improvement"] = rows["si_sdr_out"] - rows["si_sdr_in"]

    def summary(sel: np.ndarray) -> dict:
        return {k: round(float(v[torch.from_numpy(sel)].mean()), 2) for k, v in rows.items()}

    kinds = np.array([it["kind"] for it in items])
    snrs = np.array([it["snr_db"] for it in items])
    return {
        "overall": summary(np.ones(len(items), bool)),
        "per_kind": {k: summary(kinds == k) for k in dict.fromkeys(kinds.tolist())},
        "per_snr_db": {str(s): summary(snrs == s) for s in dict.fromkeys(snrs.tolist())},
        "n_mixtures": len(items),
    }


def neg_snr(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Training loss: minus the SNR (dB) of the estimate, mean over the batch. Shape: ``(b, 1, t)`` x 2 -> ()."""
    err = (estimate - clean).pow(2).sum(-1)
    return -(10 * torch.log10((clean.pow(2).sum(-1) + 1e-8) / (err + 1e-8))).mean()


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse_args(argv)
    # one thread by default: on a busy 2-core machine, two threads per process ran these small models 5-30x slower
    # per step than one (thread contention; measured in docs/results/enhancement_separation.md)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # parameter initialisation
    rng = np.random.default_rng([cfg.seed, 0])
    sr = cfg.sample_rate
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    pool = UtterancePool(range(cfg.train_speakers), sr, utterances=cfg.train_utterances, utterance_s=cfg.utterance_s,
                         seed=cfg.seed, speaker_seed=cfg.speaker_seed)
    heldout = heldout_set(cfg)
    t_data = time.perf_counter() - t0
    print(f"rendered {cfg.train_speakers * cfg.train_utterances} training utterances and {len(heldout)} held-out "
          f"mixtures in {t_data:.1f} s", flush=True)

    model = MaskingEnhancer(cfg.model_config())
    n_params = sum(p.numel() for p in model.parameters())
    before = evaluate(model, heldout)["overall"]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    n = int(round(cfg.crop_s * sr))
    history, losses = [], []
    t1, c1 = time.perf_counter(), time.process_time()
    step = 0
    while step < cfg.steps:
        # budget: CPU seconds of this process (900 CPU-s = 15 minutes of one core), so the
        # schedule does not depend on how busy the shared machine is; the wall-clock guard stops a stalled run
        progress = max(step / cfg.steps, (time.process_time() - c1) / cfg.max_cpu_s,
                       (time.perf_counter() - t1) / cfg.max_wall_s)
        if progress >= 1.0:
            print(f"time budget reached after {step} steps (max_cpu_s={cfg.max_cpu_s}, max_wall_s={cfg.max_wall_s})",
                  flush=True)
            break
        for group in opt.param_groups:  # warm-up, then cosine decay over steps or time, whichever ends first
            group["lr"] = cfg.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * progress))
        model.train()
        noisy, clean = enhancement_batch(pool, cfg.batch_size, n, rng, snr_db=cfg.snr_db, kinds=cfg.noise_kinds)
        loss = neg_snr(model(noisy), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0 or step == cfg.steps:
            history.append({"step": step, "loss": round(float(np.mean(losses)), 3),
                            "seconds": round(time.perf_counter() - t1, 1)})
            print(f"step {step}/{cfg.steps} loss (-SNR dB) {np.mean(losses):.2f} "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
            losses = []
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    model.eval()

    args.assets.mkdir(parents=True, exist_ok=True)
    metrics = {"heldout": evaluate(model, heldout), "untrained_overall": before, "n_parameters": n_params,
               "steps_done": step, "train_seconds": round(t_train, 1),
               "train_cpu_seconds": round(c_train, 1), "torch_threads": torch.get_num_threads(),
               "data_seconds": round(t_data, 1), "sample_rate": sr}
    ckpt = save_enhancer(model, args.assets / "enhancer.pt",
                         speakers={"generator": "avxai.data.synthetic.SyntheticSpeaker",
                                   "speaker_seed": cfg.speaker_seed, "train_ids": [0, cfg.train_speakers],
                                   "heldout_ids": list(cfg.eval_speakers), "babble_ids": list(cfg.babble_speakers)},
                         train=asdict(cfg), metrics={k: v for k, v in metrics.items()})
    # demo audio: a held-out babble mixture at 0 dB
    demo = next((it for it in heldout if it["kind"] == "babble" and it["snr_db"] == 0.0), heldout[0])
    save_audio(args.assets / "noisy.wav", demo["noisy"], sr)
    save_audio(args.assets / "clean.wav", demo["clean"], sr)
    reloaded = evaluate(load_enhancer(ckpt), heldout)["overall"]  # the saved file, as a user loads it
    if abs(reloaded["sdr_out"] - metrics["heldout"]["overall"]["sdr_out"]) > 1e-3:
        raise RuntimeError("the reloaded checkpoint does not reproduce the trained model's scores")
    metrics["checkpoint_bytes"] = ckpt.stat().st_size
    metrics["history"] = history
    metrics["config"] = asdict(cfg)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    o = metrics["heldout"]["overall"]
    print(f"\nheld-out ({metrics['heldout']['n_mixtures']} mixtures, {cfg.eval_s} s, SNR {list(cfg.eval_snr_db)} dB)")
    print(f"{'':>12} {'SDR in':>8} {'SDR out':>8} {'SDRi':>7} {'SI-SDR in':>10} {'SI-SDR out':>10} {'SI-SDRi':>8}")
    table = {"overall": o, **metrics["heldout"]["per_kind"],
             **{f"{k} dB": v for k, v in metrics["heldout"]["per_snr_db"].items()}}
    for name, r in table.items():
        print(f"{name:>12} {r['sdr_in']:8.2f} {r['sdr_out']:8.2f} {r['sdr_improvement']:7.2f} "
              f"{r['si_sdr_in']:10.2f} {r['si_sdr_out']:10.2f} {r['si_sdr_improvement']:8.2f}")
    print(f"\n{n_params} parameters, {step} steps in {t_train:.0f} s wall, {c_train:.0f} CPU-s on {torch.get_num_threads()} threads (+{t_data:.0f} s data); checkpoint "
          f"{metrics['checkpoint_bytes'] / 2**20:.2f} MiB at {ckpt}; metrics in {args.out / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
