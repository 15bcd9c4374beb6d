"""Separated sources as utterances for an embedding map (Gao & Grauman 2019; Zhao et al. 2019).

A separation model turns each mixture ``(1, 1, time)`` into ``(1, sources, time)``; every separated source becomes
one utterance, labelled by its output slot (``"source"``) and its mixture (``"mixture"``), resampled to the rate of
the model that embeds it. Whether the sources then cluster by slot, by mixture or by speaker (when the caller knows
who is in each mixture) says what the separator keeps apart.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode, model_device
from avxai.io.audio import resample
from avxai.models.contract import sample_rate_of

__all__ = ["separate_sources"]


def separate_sources(separator: nn.Module, mixtures: Sequence[Tensor], *, to_rate: int | None = None,
                     names: Sequence[str] | None = None) -> tuple[list[Tensor], dict[str, list[str]], list[str]]:
    """``(sources, labels, names)``: each separated source ``(1, 1, time')``, its labels ``source`` (the output
    slot) and ``mixture`` (the mixture's name), and a name per source. ``to_rate``: resample the sources from the
    separator's ``sample_rate`` to this rate (Hz).

    Shape: mixtures ``(1, 1, time)`` at the separator's rate -> sources ``(1, 1, time * to_rate / rate)``.
    """
    if not mixtures:
        raise ValueError("separate_sources needs at least one mixture")
    names = list(names) if names is not None else [f"mixture {i}" for i in range(len(mixtures))]
    rate = sample_rate_of(separator, required=to_rate is not None)
    device = model_device(separator)
    waves: list[Tensor] = []
    labels: dict[str, list[str]] = {"source": [], "mixture": []}
    out_names: list[str] = []
    with evaluation_mode(separator), torch.no_grad():
        for name, mix in zip(names, mixtures):
            out = separator(mix.to(device))
            if not isinstance(out, Tensor) or out.dim() != 3 or out.shape[0] != 1 or out.shape[1] < 2:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"a separator must return (batch, sources >= 2, time), got {shape}; give a "
                                 "separation model")
            for k in range(out.shape[1]):
                src = out[:, k:k + 1].detach().cpu().float()
                if to_rate is not None and to_rate != rate:
                    src = resample(src, rate, to_rate)
                waves.append(src)
                labels["source"].append(f"source {k}")
                labels["mixture"].append(name)
                out_names.append(f"{name}/source {k}")
    return waves, labels, out_names
