"""Train the reference two-speaker separator (a small torchaudio ConvTasNet) on generated mixtures.

    python recipes/separation/train.py            # full run (5.9 min for the committed model; docs/results/enhancement_separation.md)
    python recipes/separation/train.py --debug    # seconds; writes only under --out
    python recipes/separation/train.py --steps 200 --set batch_size=4 --out /tmp/sep

Mixtures are two different synthetic speakers at a signal-to-interference ratio drawn from
``sir_db``; the loss is the permutation-invariant negative SI-SDR. Held-out mixtures use speakers
and utterance seeds never seen in training. The script prints (and writes to ``<out>/metrics.json``
and the checkpoint's JSON) the SDR (BSS-eval v3, fast_bss_eval, 512 taps) and SI-SDR of the mixture
and of the separated sources against each reference (best permutation), and their improvement.

Outputs
-------
``<assets>/convtasnet.pt`` + ``convtasnet.json``  ConvTasNet state dict (torchaudio keys) and config
``<assets>/mixture.wav``, ``s1.wav``, ``s2.wav``   a held-out mixture and its two references
``<out>/metrics.json``                            everything measured
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from avxai.data.speech_mixtures import UtterancePool, separation_batch, two_speaker_mixture
from avxai.data.synthetic import SyntheticSpeaker
from avxai.io.audio import save_audio
from avxai.models.separation import SeparatorConfig, Separator, load_separator, save_separator, small_convtasnet
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
    train_speakers: int = 80
    train_utterances: int = 4
    utterance_s: float = 4.0
    crop_s: float = 1.0
    sir_db: tuple[float, float] = (-2.5, 2.5)
    eval_speakers: tuple[int, int] = (100, 110)
    eval_mixtures: int = 60
    eval_s: float = 2.0
    num_sources: int = 2
    enc_kernel_size: int = 32
    enc_num_feats: int = 64
    msk_kernel_size: int = 3
    msk_num_feats: int = 32
    msk_num_hidden_feats: int = 64
    msk_num_layers: int = 6
    msk_num_stacks: int = 2
    steps: int = 2500
    batch_size: int = 4
    lr: float = 0.002
    threads: int = 1
    max_cpu_s: float = 900.0
    max_wall_s: float = 1200.0

    def __post_init__(self):
        for name in ("train_speakers", "train_utterances", "eval_mixtures", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.train_speakers < 2:
            raise ValueError("train_speakers must be >= 2: a mixture needs two different speakers")
        if self.num_sources != 2:
            raise ValueError(f"this recipe mixes two speakers; num_sources must be 2, got {self.num_sources}")
        if not 0 < self.crop_s <= self.utterance_s:
            raise ValueError(f"crop_s must be in (0, utterance_s={self.utterance_s}], got {self.crop_s}")
        lo, hi = self.eval_speakers
        if not (self.train_speakers <= lo and hi - lo >= 2):
            raise ValueError(f"eval_speakers [{lo}, {hi}) must hold >= 2 ids above the training ids "
                             f"0..{self.train_speakers - 1}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.lr <= 0 or self.max_cpu_s <= 0 or self.max_wall_s <= 0:
            raise ValueError(f"lr, max_cpu_s and max_wall_s must be > 0, got {self.lr}, {self.max_cpu_s}, "
                             f"{self.max_wall_s}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from_dict(cls, d)

    def model_config(self) -> SeparatorConfig:
        names = {f.name for f in fields(SeparatorConfig)}
        return SeparatorConfig(**{k: v for k, v in asdict(self).items() if k in names})


DEBUG_OVERRIDES = dict(train_speakers=4, train_utterances=2, eval_speakers=[100, 103], eval_mixtures=2, steps=3,
                       batch_size=2, enc_num_feats=16, msk_num_feats=8, msk_num_hidden_feats=16, msk_num_layers=2,
                       msk_num_stacks=1)


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p, config=HERE / "config.yaml", out=REPO / "avxai-out" / "separation_train",
                        assets="assets/separation", length="steps")
    args = p.parse_args(argv)
    cfg = train_config(p, args, TrainConfig, debug_overrides=DEBUG_OVERRIDES, assets=REPO / "assets" / "separation",
                       length="steps")
    return cfg, args


# ---------------------------------------------------------------------------------------------
# loss and evaluation
# ---------------------------------------------------------------------------------------------
def pit_neg_si_sdr(estimate: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Permutation-invariant training loss: minus the mean SI-SDR (dB) under the best permutation per example.

    Shape: ``(batch, S, time)`` x 2 -> ``()``.
    """
    pairwise = si_sdr(estimate.unsqueeze(1), sources.unsqueeze(2))  # (batch, ref s, est c)
    n = sources.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(n))))
    totals = pairwise[:, torch.arange(n), perms].mean(-1)  # (batch, P)
    return -totals.max(dim=1).values.mean()


def best_permutation(estimate: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """``estimate`` reordered so channel k matches source k (best total SI-SDR). Shape: ``(batch, S, time)``."""
    pairwise = si_sdr(estimate.unsqueeze(1), sources.unsqueeze(2))
    n = sources.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(n))))
    best = perms[pairwise[:, torch.arange(n), perms].sum(-1).argmax(1)]  # (batch, S)
    return torch.stack([estimate[b, best[b]] for b in range(estimate.shape[0])])


def heldout_set(cfg: TrainConfig) -> list[dict]:
    """Held-out two-speaker mixtures of new speakers; SIR evenly spread over ``sir_db``."""
    speakers = [SyntheticSpeaker(i, cfg.speaker_seed) for i in range(*cfg.eval_speakers)]
    pairs = [p for p in itertools.combinations(range(len(speakers)), 2)]
    sirs = np.linspace(*cfg.sir_db, cfg.eval_mixtures) if cfg.eval_mixtures > 1 else [0.0]
    items = []
    for k in range(cfg.eval_mixtures):
        a, b = pairs[(k * 7) % len(pairs)]
        m = two_speaker_mixture(speakers[a], speakers[b], cfg.eval_s, cfg.sample_rate, float(sirs[k]), seed=20_000 + k)
        items.append({"mixture": m.mixture, "sources": m.sources, "sir_db": float(sirs[k]), "speakers": [a, b]})
    return items


@torch.no_grad()
def evaluate(model: Separator, items: list[dict]) -> dict:
    """Mean SDR / SI-SDR (dB) of the mixture and of the separated sources against each reference, and improvements."""
    model.eval()
    mix = torch.stack([it["mixture"] for it in items])  # (n, 1, t)
    src = torch.stack([it["sources"] for it in items])  # (n, 2, t)
    est = torch.cat([model(mix[i:i + 8]) for i in range(0, len(mix), 8)])
    est = best_permutation(est, src)
    n, s, t = src.shape
    ref = src.reshape(n * s, t).double()
    mixture = mix.expand(-1, s, -1).reshape(n * s, t).double()
    out = est.reshape(n * s, t).double()
    rows = {"sdr_in": bss_sdr(mixture, ref), "sdr_out": bss_sdr(out, ref),
            "si_sdr_in": si_sdr(mixture, ref), "si_sdr_out": si_sdr(out, ref)}
    rows["sdr_improvement"] = rows["sdr_out"] - rows["sdr_in"]
    rows["si_sdr_improvement"] = rows["si_sdr_out"] - rows["si_sdr_in"]
    summary = {k: round(float(v.mean()), 2) for k, v in rows.items()}
    summary["si_sdr_improvement_median"] = round(float(rows["si_sdr_improvement"].median()), 2)
    summary["fraction_sources_si_sdr_improvement_over_5dB"] = round(float((rows["si_sdr_improvement"] > 5).float()
                                                                          .mean()), 3)
    return {"overall": summary, "n_mixtures": n, "n_sources_scored": n * s}


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

    mcfg = cfg.model_config()
    model = Separator(small_convtasnet(mcfg), sr, mcfg.num_sources)
    n_params = sum(p.numel() for p in model.parameters())
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
            group["lr"] = cfg.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * progress))
        model.train()
        mix, src = separation_batch(pool, cfg.batch_size, n, rng, sir_db=cfg.sir_db)
        loss = pit_neg_si_sdr(model(mix), src)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 100 == 0 or step == cfg.steps:
            history.append({"step": step, "loss": round(float(np.mean(losses)), 3),
                            "seconds": round(time.perf_counter() - t1, 1)})
            print(f"step {step}/{cfg.steps} loss (-SI-SDR dB) {np.mean(losses):.2f} "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
            losses = []
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    model.eval()

    args.assets.mkdir(parents=True, exist_ok=True)
    metrics = {"heldout": evaluate(model, heldout), "n_parameters": n_params, "steps_done": step,
               "train_seconds": round(t_train, 1), "train_cpu_seconds": round(c_train, 1),
               "torch_threads": torch.get_num_threads(), "data_seconds": round(t_data, 1), "sample_rate": sr}
    ckpt = save_separator(model, mcfg, args.assets / "convtasnet.pt",
                          speakers={"generator": "avxai.data.synthetic.SyntheticSpeaker",
                                    "speaker_seed": cfg.speaker_seed, "train_ids": [0, cfg.train_speakers],
                                    "heldout_ids": list(cfg.eval_speakers)},
                          train=asdict(cfg), metrics=dict(metrics))
    demo = min(heldout, key=lambda it: abs(it["sir_db"]))  # the held-out mixture closest to 0 dB SIR
    save_audio(args.assets / "mixture.wav", demo["mixture"], sr)
    for k in range(demo["sources"].shape[0]):
        save_audio(args.assets / f"s{k + 1}.wav", demo["sources"][k:k + 1], sr)
    reloaded = evaluate(load_separator(ckpt), heldout)["overall"]  # the saved file, as a user loads it
    if abs(reloaded["si_sdr_out"] - metrics["heldout"]["overall"]["si_sdr_out"]) > 1e-3:
        raise RuntimeError("the reloaded checkpoint does not reproduce the trained model's scores")
    metrics["checkpoint_bytes"] = ckpt.stat().st_size
    metrics["history"] = history
    metrics["config"] = asdict(cfg)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    o = metrics["heldout"]["overall"]
    print(f"\nheld-out: {metrics['heldout']['n_mixtures']} mixtures of {cfg.eval_s} s, SIR {list(cfg.sir_db)} dB, "
          f"{metrics['heldout']['n_sources_scored']} sources scored")
    print(f"SDR    mixture {o['sdr_in']:6.2f}  separated {o['sdr_out']:6.2f}  improvement {o['sdr_improvement']:6.2f} dB")
    print(f"SI-SDR mixture {o['si_sdr_in']:6.2f}  separated {o['si_sdr_out']:6.2f}  improvement "
          f"{o['si_sdr_improvement']:6.2f} dB (median {o['si_sdr_improvement_median']:.2f})")
    print(f"\n{n_params} parameters, {step} steps in {t_train:.0f} s wall, {c_train:.0f} CPU-s on {torch.get_num_threads()} threads (+{t_data:.0f} s data); checkpoint "
          f"{metrics['checkpoint_bytes'] / 2**20:.2f} MiB at {ckpt}; metrics in {args.out / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
