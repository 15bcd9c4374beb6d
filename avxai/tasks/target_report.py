"""What the enhancement and separation tasks write beside an explanation: ``target.png`` and ``target.json``.

With a clean reference of the explained source: the target's ideal binary mask (IBM) on the explanation's
grid, the IoU of the explanation's top cells with it at area = the target's energy share of the input, the
score of the preserved and deleted inputs, and the same two scores for the IBM itself (the oracle).
Without a reference: the mixture, the mask and the preserved / deleted scores.
"""

from __future__ import annotations

import json
from pathlib import Path

from avxai.explanation import to_jsonable
from avxai.metrics.masks import compare_with_ibm, energy_share, ibm_on_grid, mask_scores, preserve_delete_scores
from avxai.tasks.base import Problem
from avxai.viz.separation import plot_mask_vs_ibm

__all__ = ["write_target_report"]


def _middle_area(explanation) -> float | None:
    areas = sorted(explanation.areas or [])
    return areas[len(areas) // 2] if explanation.masks is not None and areas else None


def write_target_report(problem: Problem, explanation, out: Path, title: str) -> list[str]:
    """Write ``target.json`` and ``target.png`` for a one-input spectrogram explanation; return their names.

    ``problem.extras["target"]`` is the explained source's clean reference ``(time,)`` at the modality's
    sample rate, or ``None``. Prints one line with the IoU (when there is a reference) and the scores.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if explanation.batch_size != 1:
        raise ValueError(f"the target report covers one input; this explanation holds {explanation.batch_size}")
    model, modality, scorer = problem.model, problem.modality, problem.scorer
    target = problem.extras.get("target")
    units = scorer.units
    doc: dict = {"title": title, "units": units, "reference": target is not None}
    ibm = ibm_scores = None
    if target is not None:
        ibm = ibm_on_grid(modality, target)
        mixture = modality.waveform[0].mean(dim=0)
        share = energy_share(target, mixture - target.to(mixture.dtype))
        cmp = compare_with_ibm(model, modality, scorer, explanation, ibm, area=share)
        oracle = preserve_delete_scores(model, modality, scorer, ibm.unsqueeze(0).to(modality.representation.dtype))
        ibm_scores = {"preserved": float(oracle["preserved"][0]), "deleted": float(oracle["deleted"][0])}
        doc.update({"energy_share": share, **cmp, "ibm_preserved": ibm_scores["preserved"],
                    "ibm_deleted": ibm_scores["deleted"]})
        area = cmp["area"]
        line = (f"IoU {cmp['iou']:.2f} with the target's ideal binary mask at area {area:.2f} (the target's energy "
                f"share {share:.2f}; a random map: {cmp['chance_iou']:.2f}); ")
    else:
        cmp = mask_scores(model, modality, scorer, explanation, _middle_area(explanation))
        doc.update(cmp)
        area = cmp["area"]
        line = f"no reference, no ideal binary mask; mask area {area:.2f}: "
    scores = {k: doc[k] for k in ("unmasked", "preserved", "deleted")}
    fig = plot_mask_vs_ibm(explanation, ibm, area=area, title=title, scores=scores, ibm_scores=ibm_scores)
    fig.savefig(out / "target.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    (out / "target.json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")
    print(f"      target: {line}unmasked {scores['unmasked']:.2f}, preserved {scores['preserved']:.2f}, "
          f"deleted {scores['deleted']:.2f} {units}".rstrip())
    return ["target.json", "target.png"]
