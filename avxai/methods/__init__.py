"""Explanation methods: ``method(model, modality, scorer, config) -> Explanation``."""

from avxai.methods.base import Method, MethodConfig, evaluate_masks, score_inputs
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


__all__ = ["Method", "MethodConfig", "evaluate_masks", "score_inputs", "Occlusion", "OcclusionConfig", "occlusion",
           "METHODS", "get_method",
           "Saliency", "SaliencyConfig", "SmoothGrad", "SmoothGradConfig", "IntegratedGradients",
           "IntegratedGradientsConfig", "GradCAM", "GradCAMConfig", "saliency", "smoothgrad", "integrated_gradients",
           "gradcam", "Extremal", "ExtremalConfig", "extremal", "PCARGB", "PCARGBConfig", "PCAEmbedding", "pca_rgb"]
