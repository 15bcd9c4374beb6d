"""The batched engine: score a model on inputs perturbed by batches of masks.

Every perturbation method and every metric hands its masks to :func:`evaluate_masks` (or, with
gradients, :func:`score_inputs`); :func:`prepare_scorer` runs the model once on the unmasked input
and prepares the scorer on its output, so that every masked score is read against the same result.

Layer: above modalities, scorers and models; below explanation, methods and metrics.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from avxai.modalities.base import Modality
from avxai.modalities.render import render_masked
from avxai.models.contract import sample_rate_of
from avxai.scorers.base import Scorer

__all__ = ["modality_device", "check_output", "check_model_rate", "score_inputs", "score_and_output", "chunk_rows",
           "evaluate_masks", "prepare_scorer", "mask_media", "top_fraction_mask"]


def modality_device(modality: Modality) -> torch.device:
    """The device of the modality's representation (its first tensor for a composite one): where masks go."""
    leaves = _leaves(modality.representation) or []
    return leaves[0].device if leaves else torch.device("cpu")


def check_model_rate(model: nn.Module, modality: Modality) -> None:
    """Raise when the model declares a ``sample_rate`` (Hz) that the modality's audio does not have."""
    expected = sample_rate_of(model)
    actual = modality.sample_rate
    if expected is None or actual is None or int(expected) == int(actual):
        return
    raise ValueError(
        f"the model expects audio at {int(expected)} Hz but the input is at {int(actual)} Hz; resample it "
        f"explicitly (Spectrogram(..., resample_to={int(expected)}), or --resample on the command line)"
    )


def _leaves(output: Any) -> list[Tensor] | None:
    """The tensors of an output (a tensor, or tuples/lists/mappings of tensors, nested; ``None`` entries skipped),
    or ``None`` when something else is inside."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, Mapping):
        items = list(output.values())
    elif isinstance(output, (tuple, list)):
        items = list(output)
    else:
        return None
    found: list[Tensor] = []
    for item in items:
        if item is None:
            continue
        leaves = _leaves(item)
        if leaves is None:
            return None
        found.extend(leaves)
    return found


def check_output(output: Any, finite: bool = True) -> Any:
    """Raise when a model output is not a tensor (or a tuple/list/mapping of tensors), or (``finite``) holds NaN or
    infinities. The finiteness check reads a value back from the device (a host synchronisation)."""
    tensors = _leaves(output)
    if not tensors:
        raise TypeError(
            f"the model returned {type(output).__name__}, not a tensor or a mapping (or tuple) of tensors; make its "
            "forward return the tensor to explain, or pick it: avxai.wrap(model, output=KEY), --model-arg output=KEY")
    for t in tensors if finite else ():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(
                "the model returned NaN or infinite values; check the model's weights and its input "
                "(sample rate, level, length) before explaining it"
            )
    return output


def prepare_scorer(model: nn.Module, modality: Modality, scorer: Scorer) -> tuple[Scorer, Tensor]:
    """Run the model on the unmasked input, prepare ``scorer`` on its output and score that output.

    The forward passes run under ``torch.inference_mode``; ``scorer.prepare`` runs outside it, so that
    a gradient method can use the prepared scorer. The caller holds :func:`avxai.hygiene.evaluation_mode`.

    A model that cannot run on the input at all (a ``RuntimeError`` from inside it on this first call: a wrong
    input type or shape, a TorchScript signature that takes something else) raises one ``ValueError`` saying so.

    Shape: returns the prepared scorer and the unmasked scores ``(batch,)``.
    """
    model_input = modality.model_input()
    with torch.inference_mode():
        try:
            output = model(model_input)
        except RuntimeError as err:
            given = (f"a tensor {tuple(model_input.shape)}" if isinstance(model_input, Tensor)
                     else type(model_input).__name__)
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = (lines[0] if lines else type(err).__name__).rstrip(".")
            raise ValueError(f"the model ({type(model).__name__}) cannot run on the input ({given}): "
                             f"{reason}; check that it takes this input (a "
                             "waveform (batch, channels, time) at its sample rate for audio), or adapt it with "
                             "avxai.wrap (mono, output, forward_kwargs) or --model-arg") from err
        unmasked_output = check_output(output)
    prepared = scorer.prepare(unmasked_output)
    with torch.inference_mode():
        unmasked = prepared(unmasked_output).detach().clone()
    return prepared, unmasked


def score_inputs(model: nn.Module, modality: Modality, scorer: Scorer, masks: Tensor) -> Tensor:
    """Scores ``(n,)`` of the model on the inputs perturbed by masks ``(n, *grid)`` (differentiable)."""
    return score_and_output(model, modality, scorer, masks)[0]


def score_and_output(model: nn.Module, modality: Modality, scorer: Scorer, masks: Tensor, *,
                     check_finite: bool | None = None, graph: bool = True) -> tuple[Tensor, Any]:
    """:func:`score_inputs` and the model output it scored.

    ``check_finite``: whether to check that the output is finite (a host synchronisation with the device); by
    default only for masks that do not require gradients. An optimisation loop (extremal's iterations) skips it
    every step: the unmasked output was checked (:func:`prepare_scorer`) and the loop watches its own gradients
    and masks. ``graph=False``: the model and the scorer run without autograd (a pass no backward follows), the
    perturbation as in a pass with it (a mask that requires gradients takes the same path).
    """
    if check_finite is None:
        check_finite = not (masks.requires_grad and torch.is_grad_enabled())
    model_input = modality.perturb(masks)
    with contextlib.nullcontext() if graph else torch.no_grad():
        output = check_output(model(model_input), finite=check_finite)
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
    device = modality_device(modality)  # masks may be made on the CPU; each batch goes where the input is
    for rows in chunk_rows(masks.shape[0], batch_size, modality.batch_size):
        out.append(score_inputs(model, modality, scorer, masks[rows].to(device)))
        if progress is not None:
            progress.update(rows.stop - rows.start)
    return torch.cat(out)


@torch.inference_mode()
def mask_media(modality: Modality, masks: dict[str, Tensor]) -> dict[str, tuple]:
    """Media of the original input and of each named mask ``(batch, *grid)`` applied, for saving.

    Keys are ``"original"`` and the mask names; a modality with several media kinds (audio and video)
    gets ``"<name>_<kind>"`` keys. One mask at a time, each rendered by :func:`avxai.modalities.render.render_masked`
    (a spectrogram a few frames at a time: no whole perturbed spectrum per mask).
    """
    media: dict[str, tuple] = {}
    device = modality_device(modality)
    for label, mask in [("original", None), *masks.items()]:
        renderings = (modality.media(modality.representation) if mask is None
                      else render_masked(modality, mask.to(device)))
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
