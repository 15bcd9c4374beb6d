"""avxai: explanations for audio-visual and speech models.

Four interfaces carry everything: a :class:`Modality` turns raw inputs into a maskable grid, a
:class:`Scorer` says what the result is, a :class:`Method` explains a model through them, and an
:class:`Explanation` holds the result and saves and plots itself.
"""

from avxai.version import __version__
from avxai.explanation import Explanation
from avxai.hygiene import evaluation_mode
from avxai.methods import METHODS, Method, MethodConfig, Occlusion, OcclusionConfig, get_method, occlusion
from avxai.modalities import Modality, Spectrogram, TensorModality
from avxai.perturbations import (
    Blur, BlurPyramid, Constant, Freeze, Mean, Noise, Perturbation, Shift, parse_perturbation,
)
from avxai.scorers import (
    SDR, SISDR, ClassLogit, ClassLogProbability, ClassProbability, ClassSigmoid, FrameScore, Scorer, SpeakerCosine,
)
# every method is a top-level function: avxai.occlusion(model, modality, scorer, config), avxai.saliency(...), ...
from avxai.methods import (
    PCARGB, GradCAM, GradCAMConfig, IntegratedGradients, IntegratedGradientsConfig, PCARGBConfig, Saliency,
    SaliencyConfig, SmoothGrad, SmoothGradConfig, gradcam, integrated_gradients, pca_rgb, saliency, smoothgrad,
)
from avxai.methods.extremal import Extremal, ExtremalConfig, extremal
from avxai.models.wrap import wrap  # any torch.nn.Module as a model avxai explains
from avxai.models.spec import resolve_model  # any --model SPEC (a bundled name, a file, a factory, a folder)
from avxai import tasks  # avxai.tasks.speaker.build(model, avxai.tasks.speaker.SpeakerOptions(...)), ...

__all__ = [
    "__version__",
    "Explanation", "evaluation_mode",
    "METHODS", "Method", "MethodConfig", "Occlusion", "OcclusionConfig", "get_method", "occlusion",
    "Modality", "Spectrogram", "TensorModality",
    "Blur", "BlurPyramid", "Constant", "Freeze", "Mean", "Noise", "Perturbation", "Shift", "parse_perturbation",
    "SDR", "SISDR", "ClassLogit", "ClassLogProbability", "ClassProbability", "ClassSigmoid", "FrameScore", "Scorer",
    "SpeakerCosine",
    "saliency", "smoothgrad", "integrated_gradients", "gradcam", "pca_rgb",
    "GradCAM", "GradCAMConfig", "IntegratedGradients", "IntegratedGradientsConfig", "Saliency", "SaliencyConfig",
    "SmoothGrad", "SmoothGradConfig", "PCARGB", "PCARGBConfig",
    "Extremal", "ExtremalConfig", "extremal",
    "tasks",
    "wrap", "resolve_model",
]
