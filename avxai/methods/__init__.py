"""Explanation methods: ``method(model, modality, scorer, config) -> Explanation``."""

from avxai.engine import evaluate_masks, score_inputs
from avxai.methods.base import Method, MethodConfig
from avxai.methods.occlusion import Occlusion, OcclusionConfig, occlusion
from avxai.methods.gradients import (
    IntegratedGradients, IntegratedGradientsConfig, Saliency, SaliencyConfig, SmoothGrad, SmoothGradConfig,
    integrated_gradients, saliency, smoothgrad,
)
from avxai.methods.gradcam import GradCAM, GradCAMConfig, gradcam
from avxai.methods.extremal import Extremal, ExtremalConfig, extremal
from avxai.methods.pca_rgb import PCARGB, PCAEmbedding, PCARGBConfig, pca_rgb

#: name -> method instance; each method module adds itself here
METHODS: dict[str, Method] = {"occlusion": occlusion}
METHODS.update({"saliency": saliency, "smoothgrad": smoothgrad, "integrated-gradients": integrated_gradients,
                "gradcam": gradcam})
METHODS["extremal"] = extremal
METHODS["pca-rgb"] = pca_rgb


def get_method(name: str) -> Method:
    """The method registered under ``name`` (``"occlusion"``, ``"extremal"``, ...)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_names(names: "str | list[str]") -> list[str]:
    """Registered method names from ``"occlusion,extremal"`` (or a list); an unknown name raises ``ValueError``
    listing them all, so a typo in a recipe's ``--methods`` stops it instead of being skipped."""
    listed = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in listed if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {', '.join(sorted(METHODS))}")
    return listed


__all__ = ["Method", "MethodConfig", "evaluate_masks", "score_inputs", "Occlusion", "OcclusionConfig", "occlusion",
           "METHODS", "get_method", "method_names",
           "Saliency", "SaliencyConfig", "SmoothGrad", "SmoothGradConfig", "IntegratedGradients",
           "IntegratedGradientsConfig", "GradCAM", "GradCAMConfig", "saliency", "smoothgrad", "integrated_gradients",
           "gradcam", "Extremal", "ExtremalConfig", "extremal", "PCARGB", "PCARGBConfig", "PCAEmbedding", "pca_rgb"]
