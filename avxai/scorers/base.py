"""The scorer interface: model output -> one number per perturbed input, higher = more evidence."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping

import torch
from torch import Tensor

from avxai.perturbations import tile_batch


class Scorer(ABC):
    """What "the result" of a model is, as a number per row of its output.

    ``scorer(output) -> Tensor (n,)``: the model output for ``n`` perturbed inputs (row ``i`` belongs
    to input ``i % batch``) becomes ``n`` scores; higher means more evidence for the result being explained.
    Scorers are differentiable where the formula is, so gradient methods can use them.

    :meth:`prepare` is called once with the model's output on the unperturbed inputs, before any
    masking: a scorer that needs it (a predicted class, the model's own output as SDR reference,
    the order of separated sources) fixes it there and returns a prepared copy.
    """

    #: unit of the score, shown on figures ("dB", "logit", "cosine", "probability")
    units: str = ""

    @abstractmethod
    def __call__(self, output: Any) -> Tensor:
        """Shape: output ``(n, ...)`` -> ``(n,)``."""

    def prepare(self, unmasked_output: Any) -> "Scorer":
        """Fix anything that depends on the unperturbed output; return the scorer to use (default: self)."""
        return self

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description for saved explanations."""
        return {"scorer": type(self).__name__, "units": self.units}


def rows_for(reference: Tensor, n: int) -> Tensor:
    """Per-input ``reference (batch, ...)`` spread over ``n`` output rows (row ``i`` -> input ``i % batch``)."""
    return tile_batch(reference, n)


def as_tensor_output(output: Any, scorer: str) -> Tensor:
    """The tensor in a model output: a tensor, the first element of a tuple/list, or the one tensor of a mapping
    (a mapping of several tensors raises naming its keys: pick one)."""
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        output = output[0]
    elif isinstance(output, Mapping):
        tensors = {k: v for k, v in output.items() if isinstance(v, Tensor)}
        if len(tensors) != 1:
            raise TypeError(
                f"{scorer} got a mapping with {'tensors ' + ', '.join(map(str, tensors)) if tensors else 'no tensor'} "
                "from the model; pick the one to score: avxai.wrap(model, output=KEY) or --model-arg output=KEY")
        output = next(iter(tensors.values()))
    if not isinstance(output, Tensor):
        raise TypeError(
            f"{scorer} expects the model to return a tensor (or a tuple whose first element is one), got "
            f"{type(output).__name__}; wrap the model so that forward returns the tensor to score"
        )
    return output


def check_rows(output: Tensor, n_ref: int, scorer: str) -> None:
    if output.shape[0] % n_ref:
        raise ValueError(
            f"{scorer}: the model returned {output.shape[0]} rows but there are {n_ref} references; "
            "the number of rows must be a multiple of the number of references"
        )


def finite_scores(scores: Tensor, scorer: str) -> Tensor:
    if not torch.isfinite(scores).all():
        raise ValueError(
            f"{scorer} produced NaN or infinite scores; the model output or reference is degenerate "
            "(all zeros, NaN from the model, or a silent reference)"
        )
    return scores
