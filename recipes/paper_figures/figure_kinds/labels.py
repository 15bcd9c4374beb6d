"""Labels the figures read from a saved explanation's metadata (input names, the attribution's units)."""

from __future__ import annotations

from avxai.explanation import Explanation


def units(expl: Explanation) -> str:
    """The scorer's units (``metadata["scorer"]["units"]``), or ``""``."""
    scorer = expl.metadata.get("scorer")
    return scorer.get("units", "") if isinstance(scorer, dict) else ""


def input_labels(expl: Explanation) -> list[str]:
    """One label per explained input: ``metadata["labels"]`` or ``["targets"]`` when there is one per input."""
    labels = expl.metadata.get("labels") or expl.metadata.get("targets")
    if isinstance(labels, list) and len(labels) == expl.batch_size:
        return [str(x) for x in labels]
    return [f"input {i}" for i in range(expl.batch_size)]


def attribution_label(expl: Explanation) -> str:
    """The colour-bar label of the explanation's attribution, with the scorer's units."""
    scorer_units = units(expl)
    if expl.masks is not None or expl.method == "extremal":
        return "mean mask (kept fraction)"
    if expl.method == "gradcam":
        return "Grad-CAM (a.u.)"
    if expl.method in ("occlusion", "integrated-gradients"):
        return f"score change ({scorer_units})" if scorer_units else "score change"
    return f"|d score / d mask| ({scorer_units})" if scorer_units else "attribution"
