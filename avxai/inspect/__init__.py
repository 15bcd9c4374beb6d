"""What the model learned: first-layer filters, embedding maps, maximally activating segments, activation maximisation.

The explanation methods (``avxai.methods``) answer "where does the model look for *this* input"; this package
answers "what has the model learned", with the classic tools of visual explanation carried over to sound:

=====================  ====================================================================================
module                 question it answers
=====================  ====================================================================================
:mod:`.filters`        which frequencies (or mel bands, or image patterns) do the first-layer filters pass?
:mod:`.embeddings`     do the embeddings cluster by speaker, or by channel / condition? (PCA, t-SNE,
                       silhouette, nearest neighbours; :mod:`.sources` embeds a separator's sources)
:mod:`.top_segments`   which time-frequency patches of a set of recordings drive one unit of a named layer?
:mod:`.maximise`       what input does a unit, a class or an embedding direction want? (regularised gradient
                       ascent on the spectrogram, audio by Griffin-Lim; :mod:`.maximise_video` on face crops)
=====================  ====================================================================================

A layer is named by its dotted module path (``"tdnn.0.0"``, ``"lstm"``), as Grad-CAM and PCA-RGB name it.
"""

from avxai.inspect.conditions import CONDITIONS, apply_condition, parse_conditions
from avxai.inspect.embeddings import EmbeddingMap, embed, embedding_map, nearest, project
from avxai.inspect.filters import Filters, first_layer_filters
from avxai.inspect.maximise import MaximiseConfig, Maximised, maximise
from avxai.inspect.maximise_video import MaximisedVideo, VideoMaximiseConfig, maximise_video
from avxai.inspect.probe import Capture, capture, unit_score
from avxai.inspect.sources import separate_sources
from avxai.inspect.top_patches import TopPatches, top_patches
from avxai.inspect.top_segments import TopSegments, TopSegmentsConfig, top_segments

__all__ = ["CONDITIONS", "apply_condition", "parse_conditions", "EmbeddingMap", "embed", "embedding_map", "nearest",
           "project", "Filters", "first_layer_filters", "MaximiseConfig", "Maximised", "maximise",
           "VideoMaximiseConfig", "MaximisedVideo", "maximise_video", "Capture", "capture", "unit_score", "TopSegments",
           "TopSegmentsConfig", "top_segments", "separate_sources", "TopPatches",
           "top_patches"]
