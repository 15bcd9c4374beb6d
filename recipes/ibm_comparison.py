"""What ``enhancement/explain.py`` and ``separation/explain.py`` share: the flags of the methods and the score,
the methods' configs from them, the start (threads, output folder, bundled model, method names checked), and one problem explained by
every method and compared with its ideal binary mask (IBM).

Not a recipe: the two explain scripts put this folder on ``sys.path`` and import it.
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from avxai.config import build_config
from avxai.methods import get_method, method_names
from avxai.metrics.masks import compare_with_ibm, preserve_delete_scores
from avxai.models.registry import load_model
from avxai.tasks.base import Problem
from avxai.viz.separation import plot_mask_vs_ibm


def add_flags(p: argparse.ArgumentParser) -> None:
    """The flags both explain recipes read here: methods and their settings, score, STFT, held-out speakers,
    seed and threads."""
    p.add_argument("--methods", default="occlusion,extremal", help="comma-separated registered methods")
    p.add_argument("--score", choices=("sdr", "si-sdr"), default="sdr")
    p.add_argument("--n-fft", type=int, default=256)
    p.add_argument("--hop-length", type=int, default=64)
    p.add_argument("--window", type=int, nargs=2, default=(8, 8), help="occlusion window (freq bins, frames)")
    p.add_argument("--stride", type=int, nargs=2, default=(4, 4), help="occlusion stride (freq bins, frames)")
    p.add_argument("--iterations", type=int, default=300, help="extremal optimisation steps")
    p.add_argument("--variant", choices=("preserve", "delete", "dual"), default="dual",
                   help="extremal variant: dual (default) keeps what the output needs and removes it from the "
                        "complement, as an ideal binary mask does; preserve alone also keeps free silent cells")
    p.add_argument("--step", type=int, nargs=2, default=(2, 2),
                   help="extremal mask step (freq bins, frames): 2 bins = 62.5 Hz at 8 kHz, fine enough for harmonics")
    p.add_argument("--sigma", type=float, nargs=2, default=(4.0, 4.0), help="extremal mask sigma (freq bins, frames)")
    p.add_argument("--speakers", type=int, nargs=2, default=(120, 130),
                   help="held-out speaker ids [first, stop); ids the checkpoint was trained on are refused")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")


def method_config(name: str, args: argparse.Namespace, area: float):
    """The config of method ``name`` (:func:`avxai.config.build_config` on the registry's config class): the
    recipe's flags for occlusion and extremal; another method is an error."""
    method = get_method(name)
    values = {"occlusion": dict(window=tuple(args.window), stride=tuple(args.stride), batch_size=16),
              "extremal": dict(areas=(min(max(round(area, 3), 0.01), 0.99),), iterations=args.iterations, seed=args.seed,
                               variant=args.variant, step=tuple(args.step), sigma=tuple(args.sigma))}
    if name not in values:
        raise SystemExit(f"this recipe configures {' and '.join(values)} only; --methods named {name!r}")
    return method, build_config(method.config_class, values=values[name])


def start(args: argparse.Namespace, bundled: str) -> tuple[nn.Module, list[str]]:
    """Set torch's threads, make ``args.out``, load ``args.model`` (or the bundled model ``bundled``) and check
    ``args.methods`` (a method this recipe does not configure fails now, not after the first explanation)."""
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model or bundled)
    try:
        methods = method_names(args.methods)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    for name in methods:
        method_config(name, args, 0.5)
    return model, methods


def explain_against_ibm(model: nn.Module, problem: Problem, ibm: torch.Tensor, share: float, methods: list[str],
                        args: argparse.Namespace, *, head: dict, suffix: str, title: str, label: str,
                        save: bool) -> dict:
    """Explain ``problem`` with every method at area ``share`` and compare each map with ``ibm``.

    Returns ``head`` plus the energy share, the IBM's area and scores, and per method the numbers of
    :func:`avxai.metrics.masks.compare_with_ibm` and the seconds taken. Writes ``<method><suffix>.png`` (mixture,
    mask, IBM, overlap) under ``args.out``, and the explanation folder ``<method><suffix>/`` when ``save``; prints one
    line per method starting with ``label``.

    Shape: ``ibm`` is ``(freq, frames)`` on the problem's STFT grid.
    """
    modality, scorer = problem.modality, problem.scorer
    oracle = preserve_delete_scores(model, modality, scorer, ibm.unsqueeze(0))
    oracle_scores = {"preserved": float(oracle["preserved"]), "deleted": float(oracle["deleted"])}
    item = head | {"energy_share": round(share, 4), "ibm_area": round(float(ibm.mean()), 4),
                   "unmasked": round(float(oracle["unmasked"]), 2),
                   "ibm_preserved": round(float(oracle["preserved"]), 2),
                   "ibm_deleted": round(float(oracle["deleted"]), 2), "methods": {}}
    for name in methods:
        method, config = method_config(name, args, share)
        t0 = time.perf_counter()
        expl = method(model, modality, scorer, config)
        seconds = time.perf_counter() - t0
        cmp = compare_with_ibm(model, modality, scorer, expl, ibm, area=share)
        item["methods"][name] = {k: round(v, 4) for k, v in cmp.items()} | {"seconds": round(seconds, 1)}
        fig = plot_mask_vs_ibm(expl, ibm, area=cmp["area"], scores=cmp, ibm_scores=oracle_scores, title=title)
        fig.savefig(args.out / f"{name}{suffix}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        if save:
            expl.save(args.out / f"{name}{suffix}", figure=False)
        print(f"{label}: {name:>9} IoU {cmp['iou']:.2f} at area {cmp['area']:.2f} "
              f"(chance {cmp['chance_iou']:.2f}; IBM area {cmp['ibm_area']:.2f}), {args.score} unmasked "
              f"{item['unmasked']:.1f} preserved {cmp['preserved']:.1f} deleted {cmp['deleted']:.1f} dB; "
              f"IBM preserved {item['ibm_preserved']:.1f} ({seconds:.0f} s)", flush=True)
    return item
