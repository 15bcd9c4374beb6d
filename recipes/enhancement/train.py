"""Train the reference speech enhancer (a T-F masking network) on generated noisy speech.

    python recipes/enhancement/train.py            # full run (9.4 min for the committed model on 2 CPU cores; docs/results/enhancement_separation.md)
    python recipes/enhancement/train.py --debug    # seconds; writes only under --out
    python recipes/enhancement/train.py --steps 200 --set batch_size=8 --out /tmp/enh

Noise: white, babble (other synthetic speakers) and band-limited Gaussian noise, SNR drawn from
``snr_db``. Held-out mixtures use speakers, babble talkers and utterance seeds never seen in
training. The script prints (and writes to ``<out>/metrics.json`` and the checkpoint's JSON) the
SDR (BSS-eval v3, fast_bss_eval, 512 taps) and SI-SDR of the noisy input and of the enhanced
output against the clean speech, and their improvement, overall, per noise kind and per SNR.
The loop, its schedule and the loss are :mod:`avxai.training`'s.

Outputs
-------
``<assets>/enhancer.pt`` + ``enhancer.json``   state dict and config (model, data, metrics)
``<assets>/noisy.wav``, ``clean.wav``          a held-out babble mixture at 0 dB and its clean speech
``<out>/metrics.json``                         everything measured
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from avxai.data.speech_mixtures import SpeechDataConfig, UtterancePool, enhancement_batch, noisy_utterance
from avxai.data.synthetic import SyntheticSpeaker
from avxai.io.audio import save_audio
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer
from avxai.training import (TrainingConfig, check_reproduced, count_parameters, neg_snr, parse_train_args,
                            report_run, run_batched, save_and_reload, sdr_rows, start_run, sub_config, summarise, timed)

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TrainConfig(TrainingConfig, EnhancerConfig, SpeechDataConfig):
    """The loop's fields (:class:`~avxai.training.TrainingConfig`), the model's (:class:`EnhancerConfig`), the
    speakers' (:class:`SpeechDataConfig`) and the noise's below, flat as in config.yaml (which sets this
    recipe's values and says what each one does)."""

    snr_db: tuple[float, float] = (-5.0, 10.0)  # training SNR range, dB
    noise_kinds: tuple[str, ...] = ("white", "babble", "band")
    babble_speakers: tuple[int, int] = (200, 220)  # held-out babble talkers [first, stop)
    eval_snr_db: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0)
    eval_per_cell: int = 8  # held-out mixtures per (noise kind, SNR)

    def __post_init__(self):
        for part in (TrainingConfig, EnhancerConfig, SpeechDataConfig):
            part.__post_init__(self)
        self.check_heldout_ids("babble_speakers", self.babble_speakers)
        if self.eval_per_cell < 1:
            raise ValueError(f"eval_per_cell must be >= 1, got {self.eval_per_cell}")
        unknown = set(self.noise_kinds) - {"white", "babble", "band"}
        if unknown or not self.noise_kinds:
            raise ValueError(f"noise_kinds must be a non-empty subset of white, babble, band; got {self.noise_kinds}")


DEBUG_OVERRIDES = dict(train_speakers=4, train_utterances=2, eval_speakers=[100, 102], babble_speakers=[200, 203],
                       eval_snr_db=[0.0], eval_per_cell=1, steps=3, batch_size=4, hidden=16, dilations=[1, 2])


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
    enhanced = run_batched(model, noisy, batch=16)[:, 0]
    sdr_in, si_sdr_in = sdr_rows(noisy[:, 0], clean)
    sdr_out, si_sdr_out = sdr_rows(enhanced, clean)
    rows = {"sdr_in": sdr_in, "sdr_out": sdr_out, "si_sdr_in": si_sdr_in, "si_sdr_out": si_sdr_out}
    rows["sdr_improvement"] = rows["sdr_out"] - rows["sdr_in"]
    rows["si_sdr_improvement"] = rows["si_sdr_out"] - rows["si_sdr_in"]
    return {"overall": summarise(rows), "per_kind": summarise(rows, [it["kind"] for it in items]),
            "per_snr_db": summarise(rows, [it["snr_db"] for it in items]), "n_mixtures": len(items)}


def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse_train_args(TrainConfig, argv, HERE, doc=__doc__, debug=DEBUG_OVERRIDES)
    rng, sr = start_run(cfg.seed, cfg.threads), cfg.sample_rate
    (pool, heldout), t_data = timed(lambda: (cfg.training_pool(sr, cfg.seed), heldout_set(cfg)))
    print(f"rendered {len(pool)} training utterances and {len(heldout)} held-out mixtures in {t_data:.1f} s", flush=True)

    model = MaskingEnhancer(sub_config(EnhancerConfig, cfg))
    before = evaluate(model, heldout)["overall"]
    n = int(round(cfg.crop_s * sr))
    run = cfg.fit(model, lambda: enhancement_batch(pool, cfg.batch_size, n, rng, snr_db=cfg.snr_db,
                                                   kinds=cfg.noise_kinds), neg_snr, loss_label="-SNR dB")
    model.eval()

    metrics = {"heldout": evaluate(model, heldout), "untrained_overall": before,
               "n_parameters": count_parameters(model), "steps_done": run.steps,
               "train_seconds": round(run.wall_s, 1), "train_cpu_seconds": round(run.cpu_s, 1),
               "torch_threads": torch.get_num_threads(), "data_seconds": round(t_data, 1), "sample_rate": sr}
    args.assets.mkdir(parents=True, exist_ok=True)
    ckpt, reloaded = save_and_reload(model, args.assets / "enhancer.pt", architecture="enhancer", kwargs=model.config,
                                     extra={"speakers": {"generator": "avxai.data.synthetic.SyntheticSpeaker",
                                                         "speaker_seed": cfg.speaker_seed,
                                                         "train_ids": [0, cfg.train_speakers],
                                                         "heldout_ids": list(cfg.eval_speakers),
                                                         "babble_ids": list(cfg.babble_speakers)},
                                            "train": asdict(cfg), "metrics": dict(metrics)})
    check_reproduced("sdr_out", evaluate(reloaded, heldout)["overall"]["sdr_out"],
                     metrics["heldout"]["overall"]["sdr_out"], 1e-3)
    # demo audio: a held-out babble mixture at 0 dB
    demo = next((it for it in heldout if it["kind"] == "babble" and it["snr_db"] == 0.0), heldout[0])
    save_audio(args.assets / "noisy.wav", demo["noisy"], sr)
    save_audio(args.assets / "clean.wav", demo["clean"], sr)
    print(f"\nheld-out ({metrics['heldout']['n_mixtures']} mixtures, {cfg.eval_s} s, SNR {list(cfg.eval_snr_db)} dB)")
    print(f"{'':>12} {'SDR in':>8} {'SDR out':>8} {'SDRi':>7} {'SI-SDR in':>10} {'SI-SDR out':>10} {'SI-SDRi':>8}")
    table = {"overall": metrics["heldout"]["overall"], **metrics["heldout"]["per_kind"],
             **{f"{k} dB": v for k, v in metrics["heldout"]["per_snr_db"].items()}}
    for name, r in table.items():
        print(f"{name:>12} {r['sdr_in']:8.2f} {r['sdr_out']:8.2f} {r['sdr_improvement']:7.2f} "
              f"{r['si_sdr_in']:10.2f} {r['si_sdr_out']:10.2f} {r['si_sdr_improvement']:8.2f}")
    return report_run(args.out, metrics, run=run, config=cfg, data_s=t_data, ckpt=ckpt)


if __name__ == "__main__":
    main(sys.argv[1:])
