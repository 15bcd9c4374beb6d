"""The method interface, and the batched engine that every perturbation method hands its masks to."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
from torch import Tensor, nn

from avxai.explanation import Explanation, to_jsonable, versions
from avxai.hygiene import evaluation_mode
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer


def check_sample_rate(model: nn.Module, modality: Modality) -> None:
    """Raise when the model declares a ``sample_rate`` (Hz) that the modality's audio does not have."""
    expected = getattr(model, "sample_rate", None)
    actual = modality.sample_rate
    if expected is None or actual is None or int(expected) == int(actual):
        return
    raise ValueError(
        f"the model expects audio at {int(expected)} Hz but the input is at {int(actual)} Hz; resample it "
        f"explicitly (Spectrogram(..., resample_to={int(expected)}), or --resample on the command line)"
    )


def check_output(output: Any) -> Any:
    """Raise when a model output (tensor, or tuple/list/dict of tensors) holds NaN or infinities."""
    tensors = output if isinstance(output, (tuple, list)) else (output.values() if isinstance(output, dict) else [output])
    for t in tensors:
        if isinstance(t, Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(
                "the model returned NaN or infinite values; check the model's weights and its input "
                "(sample rate, level, length) before explaining it"
            )
    return output


def score_inputs(model: nn.Module, modality: Modality, scorer: Scorer, masks: Tensor) -> Tensor:
    """Scores ``(n,)`` of the model on the inputs perturbed by masks ``(n, *grid)`` (differentiable)."""
    return score_and_output(model, modality, scorer, masks)[0]


def score_and_output(model: nn.Module, modality: Modality, scorer: Scorer, masks: Tensor) -> tuple[Tensor, Any]:
    """:func:`score_inputs` and the model output it scored."""
    output = check_output(model(modality.perturb(masks)))
    scores = scorer(output)
    if scores.dim() != 1 or scores.shape[0] != masks.shape[0]:
        raise ValueError(
            f"the scorer returned shape {tuple(scores.shape)} for {masks.shape[0]} perturbed inputs; a scorer "
            "must return one score per row of the model output"
        )
    return scores, output


def chunk_rows(n: int, batch_size: int, multiple: int) -> Iterator[slice]:
    """Slices over ``n`` rows, each at most ``batch_size`` rows and a multiple of ``multiple`` rows."""
    step = max(multiple, (batch_size // multiple) * multiple)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


@torch.inference_mode()
def evaluate_masks(model: nn.Module, modality: Modality, scorer: Scorer, masks: Tensor, batch_size: int = 32,
                   progress: Any = None) -> Tensor:
    """The shared engine: scores ``(n,)`` of masks ``(n, *grid)``, ``batch_size`` perturbed inputs per forward.

    Runs under ``torch.inference_mode``. ``progress`` is an optional tqdm bar advanced by rows done.
    """
    out = []
    for rows in chunk_rows(masks.shape[0], batch_size, modality.batch_size):
        out.append(score_inputs(model, modality, scorer, masks[rows]))
        if progress is not None:
            progress.update(rows.stop - rows.start)
    return torch.cat(out)


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
        check_sample_rate(model, modality)
        start = time.perf_counter()
        with evaluation_mode(model):
            with torch.inference_mode():
                unmasked_output = check_output(model(modality.model_input()))
            scorer = scorer.prepare(unmasked_output)
            with torch.inference_mode():
                unmasked = scorer(unmasked_output).detach().clone()
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


def new_explanation(method: str, modality: Modality, attribution: Tensor, **kwargs: Any) -> Explanation:
    """An :class:`Explanation` with the grid, axes, coordinates and units taken from ``modality``."""
    return Explanation(method=method, attribution=attribution.detach(), grid=modality.grid().detach(),
                       axes=tuple(modality.axes), coordinates=modality.coordinates(), units=modality.units(),
                       **kwargs)


@torch.inference_mode()
def mask_media(modality: Modality, masks: dict[str, Tensor]) -> dict[str, tuple]:
    """Media of the original input and of each named mask ``(batch, *grid)`` applied, for saving.

    Keys are ``"original"`` and the mask names; a modality with several media kinds (audio and video)
    gets ``"<name>_<kind>"`` keys.
    """
    media: dict[str, tuple] = {}
    items = [("original", modality.representation)] + [(k, modality.apply_mask(m)) for k, m in masks.items()]
    for label, representation in items:
        renderings = modality.media(representation)
        for kind, rendering in renderings.items():
            key = label if len(renderings) == 1 else f"{label}_{kind}"
            media[key] = (kind, *rendering)
    return media


def top_fraction_mask(attribution: Tensor, fraction: float) -> Tensor:
    """Binary masks ``(batch, *grid)`` keeping the ``fraction`` of cells with the largest attribution."""
    flat = attribution.reshape(attribution.shape[0], -1)
    k = max(1, int(round(fraction * flat.shape[1])))
    idx = flat.topk(k, dim=1).indices
    mask = torch.zeros_like(flat).scatter_(1, idx, 1.0)
    return mask.reshape(attribution.shape)
