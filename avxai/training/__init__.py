"""Training the reference models: the loop and what every ``recipes/*/train.py`` shares.

A recipe keeps what is its own (data, model, loss choice, and its ``TrainConfig``: :class:`TrainingConfig`'s loop
fields plus the model's and the data's) and calls::

    cfg, args = parse_train_args(TrainConfig, argv, HERE, doc=__doc__, debug=DEBUG_OVERRIDES)
    rng = start_run(cfg.seed, cfg.threads)
    run = cfg.fit(model, lambda: make_batch(rng), neg_snr, loss_label="-SNR dB")
    ckpt, reloaded = save_and_reload(model, path, architecture="enhancer", kwargs=model.config, extra={...})

Modules: :mod:`~avxai.training.loop` (budget, schedule, the step loop, BatchNorm re-estimation),
:mod:`~avxai.training.losses` (-SNR, -SI-SDR, permutation invariant), :mod:`~avxai.training.evaluation`
(held-out scoring) and :mod:`~avxai.training.recipe` (command line, config, seeds, saving, metrics file).
"""

from avxai.training.evaluation import check_reproduced, count_parameters, run_batched, sdr_rows, summarise
from avxai.training.loop import Budget, LoopResult, TrainingConfig, recalibrate_batch_norm, train_steps, warmup_cosine
from avxai.training.losses import best_permutation, neg_si_sdr, neg_snr, pit_neg_si_sdr
from avxai.training.recipe import (
    add_train_arguments, parse_train_args, report_run, save_and_reload, start_run, sub_config, timed, train_config,
    write_metrics,
)

__all__ = [
    "Budget", "LoopResult", "TrainingConfig", "add_train_arguments", "best_permutation", "check_reproduced",
    "count_parameters", "neg_si_sdr", "neg_snr", "parse_train_args", "pit_neg_si_sdr", "recalibrate_batch_norm",
    "report_run", "run_batched", "save_and_reload", "sdr_rows", "start_run", "sub_config", "summarise", "timed",
    "train_config", "train_steps", "warmup_cosine", "write_metrics",
]
