"""Adam and SGD with momentum for one parameter tensor, updated in place.

The same updates as ``torch.optim.Adam`` and ``torch.optim.SGD`` (no weight decay, no dampening, no
Nesterov), without their per-step machinery: on the few thousand mask parameters of extremal perturbation a
``torch.optim`` step plus ``zero_grad`` cost about 0.2 ms on one CPU core, about as much as the whole smooth
mask's forward pass. Gradients are passed in (from ``torch.autograd.grad``), never accumulated in ``.grad``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction, as ``torch.optim.Adam(lr, betas, eps)``.

    ``fused``: one call of the kernel behind ``torch.optim.Adam(fused=True)`` per step instead of six
    element-wise operations (the default where that kernel exists: floating-point tensors on the CPU or a
    GPU; each operation costs microseconds of dispatch, more between the model's passes).
    """

    def __init__(self, params: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 fused: bool | None = None):
        self.params, self.lr, self.betas, self.eps = params, float(lr), tuple(float(b) for b in betas), float(eps)
        self.exp_avg = torch.zeros_like(params, memory_format=torch.contiguous_format)
        self.exp_avg_sq = torch.zeros_like(params, memory_format=torch.contiguous_format)
        self.steps = 0
        available = (hasattr(torch, "_fused_adam_") and params.device.type in ("cpu", "cuda")
                     and params.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
                     and params.is_contiguous())
        if fused and not available:
            raise ValueError(f"no fused Adam kernel for {params.dtype} parameters on {params.device}; use fused=False")
        self.fused = available if fused is None else bool(fused)
        self._step_count = torch.zeros((), dtype=torch.float32, device=params.device)  # the fused kernel's

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        """One update of ``params`` from ``grad`` (same shape)."""
        beta1, beta2 = self.betas
        self.steps += 1
        if self.fused:
            self._step_count.fill_(self.steps)
            torch._fused_adam_([self.params], [grad.contiguous()], [self.exp_avg], [self.exp_avg_sq], [],
                               [self._step_count], lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                               eps=self.eps, amsgrad=False, maximize=False)
            return
        self.exp_avg.lerp_(grad, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        bias1, root_bias2 = 1.0 - beta1**self.steps, math.sqrt(1.0 - beta2**self.steps)
        # lr / bias1 * m / (sqrt(v) / root_bias2 + eps), with root_bias2 moved out of the denominator
        denom = self.exp_avg_sq.sqrt().add_(self.eps * root_bias2)
        self.params.addcdiv_(self.exp_avg, denom, value=-self.lr * root_bias2 / bias1)


class SGD:
    """SGD with heavy-ball momentum, as ``torch.optim.SGD(lr, momentum)`` (the first step is plain SGD)."""

    def __init__(self, params: Tensor, lr: float, momentum: float = 0.0):
        self.params, self.lr, self.momentum = params, float(lr), float(momentum)
        self.buffer: Tensor | None = None

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        """One update of ``params`` from ``grad`` (same shape)."""
        if self.momentum == 0:
            direction = grad
        elif self.buffer is None:
            direction = self.buffer = grad.clone()
        else:
            direction = self.buffer.mul_(self.momentum).add_(grad)
        self.params.add_(direction, alpha=-self.lr)


__all__ = ["Adam", "SGD"]
