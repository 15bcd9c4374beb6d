"""Train the reference two-speaker separator (a small torchaudio ConvTasNet) on generated mixtures.

    python recipes/separation/train.py            # full run (5.9 min for the committed model; docs/results/enhancement_separation.md)
    python recipes/separation/train.py --debug    # seconds; writes only under --out
    python recipes/separation/train.py --steps 200 --set batch_size=4 --out /tmp/sep

Mixtures are two different synthetic speakers at a signal-to-interference ratio drawn from
``sir_db``; the loss is the permutation-invariant negative SI-SDR. Held-out mixtures use speakers
and utterance seeds never seen in training. The script prints (and writes to ``<out>/metrics.json``
and the checkpoint's JSON) the SDR (BSS-eval v3, fast_bss_eval, 512 taps) and SI-SDR of the mixture
and of the separated sources against each reference (best permutation), and their improvement.
The loop, its schedule and the loss are :mod:`avxai.training`'s.

Outputs
-------
``<assets>/convtasnet.pt`` + ``convtasnet.json``  ConvTasNet state dict (torchaudio keys) and config
``<assets>/mixture.wav``, ``s1.wav``, ``s2.wav``   a held-out mixture and its two references
``<out>/metrics.json``                            everything measured
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from avxai.data.speech_mixtures import SpeechDataConfig, separation_batch, two_speaker_mixture
from avxai.data.synthetic import SyntheticSpeaker
from avxai.io.audio import save_audio
from avxai.models.separation import SeparatorConfig, Separator, small_convtasnet
from avxai.training import (TrainingConfig, best_permutation, check_reproduced, count_parameters, parse_train_args,
                            pit_neg_si_sdr, report_run, run_batched, save_and_reload, sdr_rows, start_run, sub_config,
                            summarise, timed)

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TrainConfig(TrainingConfig, SeparatorConfig, SpeechDataConfig):
    """The loop's fields (:class:`~avxai.training.TrainingConfig`), the model's (:class:`SeparatorConfig`), the
    speakers' (:class:`SpeechDataConfig`) and the mixtures' below, flat as in config.yaml (which sets this
    recipe's values and says what each one does)."""

    sir_db: tuple[float, float] = (-2.5, 2.5)  # speaker A over speaker B, dB
    eval_mixtures: int = 60

    def __post_init__(self):
        for part in (TrainingConfig, SeparatorConfig, SpeechDataConfig):
            part.__post_init__(self)
        if self.num_sources != 2:
            raise ValueError(f"this recipe mixes two speakers; num_sources must be 2, got {self.num_sources}")
        self.check_heldout_ids("eval_speakers", self.eval_speakers, at_least=2)
        if self.eval_mixtures < 1:
            raise ValueError(f"eval_mixtures must be >= 1, got {self.eval_mixtures}")


DEBUG_OVERRIDES = dict(train_speakers=4, train_utterances=2, eval_speakers=[100, 103], eval_mixtures=2, steps=3,
                       batch_size=2, enc_num_feats=16, msk_num_feats=8, msk_num_hidden_feats=16, msk_num_layers=2,
                       msk_num_stacks=1)


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
    est = best_permutation(run_batched(model, mix, batch=8), src)
    n, s, t = src.shape
    ref = src.reshape(n * s, t)
    sdr_in, si_sdr_in = sdr_rows(mix.expand(-1, s, -1).reshape(n * s, t), ref)
    sdr_out, si_sdr_out = sdr_rows(est.reshape(n * s, t), ref)
    rows = {"sdr_in": sdr_in, "sdr_out": sdr_out, "si_sdr_in": si_sdr_in, "si_sdr_out": si_sdr_out,
            "sdr_improvement": sdr_out - sdr_in, "si_sdr_improvement": si_sdr_out - si_sdr_in}
    summary = summarise(rows)
    summary["si_sdr_improvement_median"] = round(float(rows["si_sdr_improvement"].median()), 2)
    summary["fraction_sources_si_sdr_improvement_over_5dB"] = round(float((rows["si_sdr_improvement"] > 5).float()
                                                                          .mean()), 3)
    return {"overall": summary, "n_mixtures": n, "n_sources_scored": n * s}


def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse_train_args(TrainConfig, argv, HERE, doc=__doc__, debug=DEBUG_OVERRIDES)
    rng, sr = start_run(cfg.seed, cfg.threads), cfg.sample_rate
    (pool, heldout), t_data = timed(lambda: (cfg.training_pool(sr, cfg.seed), heldout_set(cfg)))
    print(f"rendered {len(pool)} training utterances and {len(heldout)} held-out mixtures in {t_data:.1f} s", flush=True)

    mcfg = sub_config(SeparatorConfig, cfg)
    model = Separator(small_convtasnet(mcfg), sr, mcfg.num_sources)
    n = int(round(cfg.crop_s * sr))
    run = cfg.fit(model, lambda: separation_batch(pool, cfg.batch_size, n, rng, sir_db=cfg.sir_db), pit_neg_si_sdr,
                  loss_label="-SI-SDR dB")
    model.eval()

    metrics = {"heldout": evaluate(model, heldout), "n_parameters": count_parameters(model), "steps_done": run.steps,
               "train_seconds": round(run.wall_s, 1), "train_cpu_seconds": round(run.cpu_s, 1),
               "torch_threads": torch.get_num_threads(), "data_seconds": round(t_data, 1), "sample_rate": sr}
    args.assets.mkdir(parents=True, exist_ok=True)
    ckpt, reloaded = save_and_reload(model, args.assets / "convtasnet.pt", architecture="separator", kwargs=mcfg,
                                     extra={"speakers": {"generator": "avxai.data.synthetic.SyntheticSpeaker",
                                                         "speaker_seed": cfg.speaker_seed,
                                                         "train_ids": [0, cfg.train_speakers],
                                                         "heldout_ids": list(cfg.eval_speakers)},
                                            "train": asdict(cfg), "metrics": dict(metrics)})
    check_reproduced("si_sdr_out", evaluate(reloaded, heldout)["overall"]["si_sdr_out"],
                     metrics["heldout"]["overall"]["si_sdr_out"], 1e-3)
    demo = min(heldout, key=lambda it: abs(it["sir_db"]))  # the held-out mixture closest to 0 dB SIR
    save_audio(args.assets / "mixture.wav", demo["mixture"], sr)
    for k in range(demo["sources"].shape[0]):
        save_audio(args.assets / f"s{k + 1}.wav", demo["sources"][k:k + 1], sr)
    o = metrics["heldout"]["overall"]
    print(f"\nheld-out: {metrics['heldout']['n_mixtures']} mixtures of {cfg.eval_s} s, SIR {list(cfg.sir_db)} dB, "
          f"{metrics['heldout']['n_sources_scored']} sources scored")
    print(f"SDR    mixture {o['sdr_in']:6.2f}  separated {o['sdr_out']:6.2f}  improvement {o['sdr_improvement']:6.2f} dB")
    print(f"SI-SDR mixture {o['si_sdr_in']:6.2f}  separated {o['si_sdr_out']:6.2f}  improvement "
          f"{o['si_sdr_improvement']:6.2f} dB (median {o['si_sdr_improvement_median']:.2f})")
    return report_run(args.out, metrics, run=run, config=cfg, data_s=t_data, ckpt=ckpt)


if __name__ == "__main__":
    main(sys.argv[1:])
