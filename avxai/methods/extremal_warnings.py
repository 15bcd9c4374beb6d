"""The warnings an expert wants from an extremal perturbation run (issue 16): a mask gradient that held NaN or
infinite cells, a preserved score far above the unmasked one, a final area off its target, a reward that barely
moves between the input and the fully removed input. Each is one sentence naming the cause and the fix.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avxai.methods.extremal_config import ExtremalConfig

__all__ = ["gradient_problems", "score_problems"]


def gradient_problems(bad: int, first: int, total: int) -> list[str]:
    """A warning when the mask's gradient held NaN or infinite cells; ``ValueError`` when it mostly did."""
    if bad == 0:
        return []
    share = bad / max(1, total)
    what = (f"the mask's gradient was NaN or infinite in {bad} parameter cells over the run ({100 * share:.1f} %, "
            f"first at iteration {first}): the model is singular at some of the perturbed inputs (a sqrt, log or "
            "norm of an exactly silent or zero region); ")
    if share > 0.5:
        raise ValueError(what + "the masks could not be optimised. Use a perturbation that never makes exact zeros, "
                         "e.g. perturbation='floor' (the input's own noise floor) or 'noise:30'")
    return [what + "those cells were held still on those steps. perturbation='floor' (the input's own noise floor) "
            "avoids exact zeros"]


def score_problems(preserved: Tensor, unmasked: Tensor, removed: Tensor, config: ExtremalConfig,
                    masks: Tensor, areas: Tensor | None = None) -> list[str]:
    """Warnings on the final masks ``(B, K, *grid)`` and their preserved scores ``(B, K)``: a preserved score far above
    the unmasked one, an area off its target, a reward that barely moves (see ``ExtremalConfig``).

    ``areas`` ``(B, K)``: the masks' areas as the constraint counts them (:func:`avxai.methods.parts.mask_area`: on
    an audio-visual grid the parts weigh by ``part_weights``, not by cells); ``None``: the mean over the grid."""
    out = []
    span = (unmasked - removed).abs()
    level = torch.maximum(unmasked.abs(), removed.abs())
    flat = level <= 0
    ill = (span <= config.ill_conditioned * level) | flat
    if bool(ill.any()):
        rows = ill.nonzero().flatten().tolist()
        out.append(f"ill-conditioned reward for input(s) {rows}: the score barely moves between the input "
                   f"({fmt(unmasked[rows])}) and the fully removed input ({fmt(removed[rows])}); the model may "
                   "ignore this perturbation (try another, e.g. perturbation='floor' or 'noise:10'), and the masks "
                   "say little")
    margin = torch.maximum(unmasked.abs(), span).unsqueeze(1) * (config.warn_above - 1.0)
    above = preserved - unmasked.unsqueeze(1) > margin
    if bool(above.any()):
        cells = [(int(b), config.areas[int(a)]) for b, a in above.nonzero().tolist()]
        out.append(f"the preserved score exceeds the unmasked one by more than {100 * (config.warn_above - 1):.0f} % "
                   f"(input, area: {cells}; preserved {fmt(preserved[above])} vs unmasked "
                   f"{fmt(unmasked.unsqueeze(1).expand_as(above)[above])}): the masks keep an input the model scores "
                   "above the real one, likely one it was never meant to see; do not read them as the evidence. Use "
                   "saturation=1.0 and perturbation='floor', or check with occlusion")
    areas = masks.flatten(2).mean(dim=2) if areas is None else areas  # (B, K)
    off = (areas - torch.tensor(config.areas, dtype=areas.dtype, device=areas.device)).abs() > config.area_tolerance
    if bool(off.any()):
        cells = [(int(b), config.areas[int(a)], round(float(areas[b, a]), 3)) for b, a in off.nonzero().tolist()]
        out.append(f"final mask area off its target by more than {config.area_tolerance} (input, area, final area: "
                   f"{cells}): the area constraint did not win against the score; raise iterations or growth")
    return out


def fmt(values: Tensor) -> str:
    return "[" + ", ".join(f"{float(v):.3g}" for v in values.flatten()[:6]) + (", ...]" if values.numel() > 6 else "]")
