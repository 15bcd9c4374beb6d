"""Explanation methods: ``method(model, modality, scorer, config) -> Explanation``."""

from avxai.methods.base import Method, MethodConfig, evaluate_masks, score_inputs
from avxai.methods.occlusion import Occlusion, OcclusionConfig, occlusion

#: name -> method instance; each method module adds itself here
METHODS: dict[str, Method] = {"occlusion": occlusion}


def get_method(name: str) -> Method:
    """The method registered under ``name`` (``"occlusion"``, ``"extremal"``, ...)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


__all__ = ["Method", "MethodConfig", "evaluate_masks", "score_inputs", "Occlusion", "OcclusionConfig", "occlusion",
           "METHODS", "get_method"]
