"""Benchmark: what one step of extremal perturbation costs besides the model, part by part.

The steps of ``avxai.methods.extremal``, in its order (smooth mask and its upsampling, area constraint,
perturbation and score, backward, optimiser), run on the mel-image set-up of ``bench/extremal_overhead.py``
with a linear model whose own passes cost about 0.1 ms, so what is timed is the mask side. Times are per step
for K masks on one thread, averaged over N steps; they are lower bounds: next to a real model each part runs
two to four times slower (its code and data have left the caches during the model's passes). Extremal takes
the gradient w.r.t. the parameters in one autograd call; here it is split in two (model and perturbation back
to the masks, then upsampling and smooth mask back to the parameters) to time each.

    .venv/bin/python bench/extremal_mask_side.py --steps 500 --threads 1
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict

import torch
from torch import nn


class LinearLogits(nn.Module):
    """Logits ``(n, 3)`` of a fixed linear map of the flattened input: a model that costs almost nothing."""

    def __init__(self, cells: int):
        super().__init__()
        self.register_buffer("weight", torch.randn(3, cells, generator=torch.Generator().manual_seed(0)) * 0.01)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--areas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--grid", type=int, nargs=2, default=[40, 301], help="mel bands and frames")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from avxai import ClassLogit, ExtremalConfig, TensorModality
    from avxai.engine import score_and_output
    from avxai.methods.area import AreaConstraint, ones_of
    from avxai.methods.optimisers import Adam
    from avxai.methods.smooth_mask import SmoothMaskGenerator

    grid = tuple(args.grid)
    image = torch.rand(1, 1, *grid, generator=torch.Generator().manual_seed(1))
    modality, scorer = TensorModality(image, ("mel", "time"), "zero", nonnegative=True), ClassLogit(0)
    model = LinearLogits(math.prod(grid))
    config = ExtremalConfig(areas=tuple(args.areas))
    step, sigma = config.resolve(grid)
    generator = SmoothMaskGenerator(grid, step, sigma, temperature=config.temperature, oversample=config.oversample,
                                    radius=config.radius)
    k = len(args.areas)
    cells = math.prod(generator.out_shape)
    area = AreaConstraint(ones_of(torch.tensor(args.areas, dtype=torch.float64), cells).tolist(), cells)
    params = generator.init_params(k, config.init, config.init_jitter).requires_grad_(True)
    optimiser = Adam(params, lr=config.learning_rate, betas=config.betas)
    score_grad = -torch.ones(k)
    times: dict[str, float] = defaultdict(float)

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        times[name] += now - start
        return now

    warm = 50
    for it in range(args.steps + warm):
        if it == warm:
            times.clear()
        t = time.perf_counter()
        smooth = generator(params)
        masks = generator.upsample(smooth)
        t = lap("smooth mask, upsampling", t)
        regul, regul_grad = area(smooth, config.lambda_at(it))
        t = lap("area constraint", t)
        masks.detach().reshape(k, -1).mean(dim=1)
        t = lap("areas (history)", t)
        scores, _ = score_and_output(model, modality, scorer, masks)
        t = lap("perturb, model*, score", t)
        (grad_masks,) = torch.autograd.grad(scores, masks, score_grad)
        t = lap("backward: model*, perturbation", t)
        (grad,) = torch.autograd.grad([masks, smooth], params, [grad_masks, regul_grad])
        t = lap("backward: upsampling, smooth mask", t)
        optimiser.step(grad)
        with torch.no_grad():
            params.clamp_(0.0, 1.0)
        lap("Adam step, clamp", t)
    total = sum(times.values())
    print(f"grid {grid}, params {generator.param_shape}, smooth mask {generator.out_shape}, {k} masks, "
          f"{args.threads} thread(s), mean of {args.steps} steps (* includes the linear "
          "model, ~0.1 ms)")
    for name, seconds in times.items():
        print(f"  {name:32s} {seconds / args.steps * 1e6:8.1f} us")
    print(f"  {'total':32s} {total / args.steps * 1e6:8.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
