"""avxai: explanations for audio-visual and speech models.

Four interfaces carry everything: a :class:`Modality` turns raw inputs into a maskable grid, a
:class:`Scorer` says what the result is, a :class:`Method` explains a model through them, and an
:class:`Explanation` holds the result and saves and plots itself (and shows itself in a notebook).

The public API is ``__all__`` below: every registered method as a top-level function (``avxai.occlusion``,
``avxai.extremal``, ``avxai.saliency``, ...; ``avxai.METHODS`` maps their names), :func:`load_model` /
:func:`wrap` / :func:`resolve_model` for models, the modalities, scorers and perturbations, ``avxai.tasks`` and
``avxai.metrics`` (deletion / insertion curves, segment mass, sanity checks). A first explanation::

    import avxai
    model = avxai.load_model("speakernet")
    wav, sr = avxai.load_audio(avxai.ASSETS_DIR / "speaker" / "aba.wav", sample_rate=model.sample_rate)
    expl = avxai.occlusion(model, avxai.Spectrogram(wav, sr), avxai.ClassLogit(0))
    expl          # in a notebook: figure, scores, audio players; expl.to_html("x.html"), expl.save("out/")
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
from avxai.models import load_model  # a bundled name ("speakernet", "enhancer", ...), a checkpoint, "resemblyzer"
from avxai.models.state import ASSETS_DIR  # the bundled models and demo media inside the installed package
from avxai.modalities.video import FaceVideo
from avxai.modalities.audio_visual import AudioVisual
from avxai.io import load_audio, save_audio
from avxai import metrics  # how good an explanation is: avxai.metrics.deletion_curve(...), ...
from avxai.metrics import deletion_curve, insertion_curve, mass_in_segments, randomisation_check
from avxai.metrics.localisation import segment_mass
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
    "wrap", "resolve_model", "load_model", "ASSETS_DIR",
    "FaceVideo", "AudioVisual", "load_audio", "save_audio",
    "metrics", "deletion_curve", "insertion_curve", "mass_in_segments", "randomisation_check", "segment_mass",
]
