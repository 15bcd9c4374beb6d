"""The method interface: ``method(model, modality, scorer, config) -> Explanation``.

The batched engine that every perturbation method hands its masks to lives in :mod:`avxai.engine`.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from avxai.engine import check_model_rate, prepare_scorer
from avxai.explanation import Explanation, to_jsonable, versions
from avxai.hygiene import evaluation_mode
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer


@dataclass(frozen=True)
class MethodConfig:
    """Base of method configs (frozen dataclasses, every hyper-parameter named and defaulted)."""


class Method(ABC):
    """An explanation method: ``method(model, modality, scorer, config) -> Explanation``.

    The base class checks the config's type and the sample rate, runs the model under
    :func:`avxai.hygiene.evaluation_mode`, prepares the scorer on the unperturbed output, times the
    run and fills in the common metadata. Subclasses implement :meth:`explain`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]

    def __call__(self, model: nn.Module, modality: Modality, scorer: Scorer,
                 config: MethodConfig | None = None) -> Explanation:
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise TypeError(f"{self.name} takes a {self.config_class.__name__}, got {type(config).__name__}")
        if not isinstance(modality, Modality):
            raise TypeError(f"modality must be an avxai Modality (e.g. Spectrogram), got {type(modality).__name__}")
        if not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be an avxai Scorer (e.g. ClassLogit, SDR), got {type(scorer).__name__}")
        check_model_rate(model, modality)
        start = time.perf_counter()
        with evaluation_mode(model):
            scorer, unmasked = prepare_scorer(model, modality, scorer)
            explanation = self.explain(model, modality, scorer, config, unmasked)
        explanation.scores.setdefault("unmasked", unmasked)
        explanation.metadata = {
            "method": self.name,
            "config": to_jsonable(config),
            "modality": modality.metadata(),
            "scorer": scorer.describe(),
            "model": type(model).__name__,
            "seconds": round(time.perf_counter() - start, 3),
            "versions": versions(),
            **explanation.metadata,
        }
        return explanation

    @abstractmethod
    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: MethodConfig,
                unmasked: Tensor) -> Explanation:
        """Compute the explanation; ``unmasked`` holds the scores ``(batch,)`` of the unperturbed inputs."""


class ExplanationWarning(UserWarning):
    """A method's result may mislead (a preserved score far above the unmasked one, an area off its target, a
    reward that barely moves, NaN gradients held still...): the same sentences are in ``metadata["warnings"]``."""


def report_warnings(messages: list[str]) -> list[str]:
    """Issue each message as an :class:`ExplanationWarning` (the caller also keeps them in its metadata)."""
    for message in messages:
        warnings.warn(message, ExplanationWarning, stacklevel=4)
    return messages


def check_finite(method: str, name: str, values: Tensor, cause: str = "") -> None:
    """``ValueError`` when ``values`` hold NaN or infinities: a method never returns such a map."""
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(f"{method}: the {name} holds {bad} NaN or infinite values of {values.numel()}"
                         + (f" ({cause})" if cause else "") + "; nothing was saved")


def new_explanation(method: str, modality: Modality, attribution: Tensor, **kwargs: Any) -> Explanation:
    """An :class:`Explanation` with the grid, axes, coordinates and units taken from ``modality``; ``ValueError``
    when the attribution (or the masks) hold NaN or infinities."""
    check_finite(method, "attribution", attribution, "the model's gradient or scores were NaN or infinite for some "
                 "perturbed inputs")
    if isinstance(kwargs.get("masks"), Tensor):
        check_finite(method, "masks", kwargs["masks"])
    return Explanation(method=method, attribution=attribution.detach(), grid=modality.grid().detach(),
                       axes=tuple(modality.axes), coordinates=modality.coordinates(), units=modality.units(),
                       **kwargs)
