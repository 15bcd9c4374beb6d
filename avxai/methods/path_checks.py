"""Integrated gradients' path check: one clear error when the mask's gradient is NaN or infinite somewhere on the
path from the baseline (mask 0) to the input (mask 1), naming the cause and the fix."""

from __future__ import annotations

from torch import Tensor

from avxai.modalities.base import Modality

__all__ = ["check_path_gradients"]


def check_path_gradients(finite: Tensor, alphas: Tensor, modality: Modality) -> None:
    """``ValueError`` naming the cause when the mask's gradient is NaN or infinite somewhere on the path: at
    ``alpha = 0`` the baseline sits on a singular point of the model (the gradient of a sqrt, log or norm at an
    exactly silent or zero input), elsewhere the model itself is singular there.

    Shape: finite ``(k,)`` (whether the gradients at ``alphas[j]`` are all finite), alphas ``(k,)``.
    """
    if bool(finite.all()):
        return
    bad = [round(float(a), 4) for a in alphas[~finite.cpu()]]
    baseline = repr(getattr(modality, "perturbation", None))
    if bad == [0.0]:
        raise ValueError(
            "integrated-gradients: the mask's gradient is NaN or infinite at the baseline (alpha = 0: every cell "
            f"removed, the modality's {baseline} perturbation, e.g. digital silence), where the model is singular "
            "(a sqrt, log or norm of 0 inside it); use a baseline off that point: perturbation='floor' (the "
            "input's own noise floor; --perturbation floor) or 'noise:30', or rule='riemann_right' / "
            "'riemann_middle', which do not evaluate alpha = 0")
    raise ValueError(
        f"integrated-gradients: the mask's gradient is NaN or infinite at alpha = {bad} of the path: the model is "
        "singular at those scaled inputs (a sqrt, log or norm of 0 inside it); use perturbation='floor' (the "
        "input's own noise floor) so that no point of the path is exactly silent, or check the model")
