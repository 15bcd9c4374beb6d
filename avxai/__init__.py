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
from avxai.scorers import SDR, SISDR, ClassLogit, ClassLogProbability, ClassProbability, Scorer, SpeakerCosine
from avxai.methods import (
    GradCAM, GradCAMConfig, IntegratedGradients, IntegratedGradientsConfig, Saliency, SaliencyConfig, SmoothGrad,
    SmoothGradConfig,
)
from avxai.methods.extremal import Extremal, ExtremalConfig, extremal
from avxai.models.wrap import wrap  # any torch.nn.Module as a model avxai explains
from avxai import tasks  # avxai.tasks.speaker.build(model, avxai.tasks.speaker.SpeakerOptions(...)), ...

__all__ = [
    "__version__",
    "Explanation", "evaluation_mode",
    "METHODS", "Method", "MethodConfig", "Occlusion", "OcclusionConfig", "get_method", "occlusion",
    "Modality", "Spectrogram", "TensorModality",
    "Blur", "BlurPyramid", "Constant", "Freeze", "Mean", "Noise", "Perturbation", "Shift", "parse_perturbation",
    "SDR", "SISDR", "ClassLogit", "ClassLogProbability", "ClassProbability", "Scorer", "SpeakerCosine",
    "GradCAM", "GradCAMConfig", "IntegratedGradients", "IntegratedGradientsConfig", "Saliency", "SaliencyConfig",
    "SmoothGrad", "SmoothGradConfig",
    "Extremal", "ExtremalConfig", "extremal",
    "tasks",
    "wrap",
]
