"""Class scores: the logit or the probability of a target class."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from avxai.scorers.base import Scorer, as_tensor_output, rows_for


class ClassLogit(Scorer):
    """The logit of class ``target`` (an index, or one index per input); ``None`` = the class the
    model predicts on the unperturbed input.

    Shape: output ``(n, classes)`` -> ``(n,)``.
    """

    units = "logit"

    def __init__(self, target: "int | Sequence[int] | Tensor | None" = None):
        self.target = None if target is None else torch.as_tensor(target, dtype=torch.long).reshape(-1)

    @property
    def target(self) -> "Tensor | None":
        """Target class per input ``(batch,)`` long, or ``None`` until :meth:`prepare`."""
        return self._target

    @target.setter
    def target(self, value: "Tensor | None") -> None:
        self._target = value
        # the range, once: checking the tensor on every call costs more than the gather in an optimisation loop
        self._target_range = None if value is None or value.numel() == 0 else (int(value.min()), int(value.max()))
        self._rows_cache: tuple = (None, None)  # ((rows, device), targets per row)

    def prepare(self, unmasked_output: Any) -> "ClassLogit":
        if self.target is not None:
            return self
        logits = self._logits(unmasked_output)
        return type(self)(logits.argmax(dim=-1))

    #: normalised over the classes (softmax): constant on a one-column output, which is then refused
    _normalised = False

    def _logits(self, output: Any) -> Tensor:
        logits = as_tensor_output(output, type(self).__name__)
        if logits.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects logits (n, classes), got shape {tuple(logits.shape)}")
        if self._normalised and logits.shape[1] == 1:
            raise ValueError(f"{type(self).__name__} on a one-column output is constant (a softmax over one logit "
                             "is the same for every input, so every map would be zero); explain the logit "
                             "(ClassLogit, score 'logit') or its sigmoid (ClassSigmoid, score 'sigmoid')")
        return logits

    def _targets(self, logits: Tensor) -> Tensor:
        if self.target is None:
            raise ValueError(f"{type(self).__name__}(None) must be prepared on the unmasked output first")
        low, high = self._target_range or (0, -1)
        if low < 0 or high >= logits.shape[1]:
            raise ValueError(f"target class {self.target.tolist()} is out of range for {logits.shape[1]} classes")
        key = (logits.shape[0], logits.device)
        if self._rows_cache[0] != key:  # the same every step of an optimisation
            with torch.inference_mode(False):  # a normal tensor, usable with and without autograd
                self._rows_cache = (key, rows_for(self.target.to(logits.device), logits.shape[0]))
        return self._rows_cache[1]

    def __call__(self, output: Any) -> Tensor:
        logits = self._logits(output)
        return logits.gather(1, self._targets(logits).unsqueeze(1)).squeeze(1)

    def describe(self) -> dict:
        return {**super().describe(), "target": None if self.target is None else self.target.tolist()}


class ClassProbability(ClassLogit):
    """Softmax probability of class ``target`` (see :class:`ClassLogit`). Shape: ``(n, classes)`` -> ``(n,)``.

    A one-column output is refused: its softmax is 1 whatever the input (a map of zeros), so explain the logit
    (:class:`ClassLogit`) or its sigmoid (:class:`ClassSigmoid`).
    """

    units = "probability"

    _normalised = True

    def __call__(self, output: Any) -> Tensor:
        logits = self._logits(output)
        return logits.softmax(dim=1).gather(1, self._targets(logits).unsqueeze(1)).squeeze(1)


class ClassSigmoid(ClassLogit):
    """Sigmoid of the logit of class ``target``: the probability of a binary (one-column) or multi-label output
    (see :class:`ClassLogit`). Shape: ``(n, classes)`` -> ``(n,)`` in [0, 1]."""

    units = "probability (sigmoid)"

    def __call__(self, output: Any) -> Tensor:
        return super().__call__(output).sigmoid()


class ClassLogProbability(ClassLogit):
    """Log-softmax of class ``target`` (see :class:`ClassLogit`): the logit minus the log-sum-exp of all
    logits, so evidence for a competing class (an interfering speaker) counts against the target.

    Shape: ``(n, classes)`` -> ``(n,)``, in nats.
    """

    units = "log-probability"

    _normalised = True  # a one-column log-softmax is 0 for every input: refused as well

    def __call__(self, output: Any) -> Tensor:
        logits = self._logits(output)
        return logits.log_softmax(dim=1).gather(1, self._targets(logits).unsqueeze(1)).squeeze(1)
