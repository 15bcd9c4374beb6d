"""The audited model: any ``--model SPEC`` (:mod:`avxai.models.spec`), as something that travels to worker
processes and Ray nodes.

Bundled names and avxai checkpoints travel as their bytes (:class:`~avxai.models.registry.ModelBlob`: no worker
needs the file); every other kind (a TorchScript file, ``package.module:factory``, a HuggingFace or SpeechBrain
folder, Resemblyzer) travels as its spec and ``--model-arg`` values (:class:`~avxai.models.spec.ModelSpec`) and is
resolved again in each worker, so its files must be readable there at the same path. Either is built once per
process (``build()``), and must give a speaker model: a sample rate and an embedder
(:func:`avxai.models.contract.embedder_of`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avxai.models.contract import embedder_of, sample_rate_of
from avxai.models.registry import ModelBlob
from avxai.models.spec import ModelSpec, model_source

__all__ = ["load_audit_model"]


def load_audit_model(model: "str | Path | ModelBlob | ModelSpec | None" = None, architecture: str | None = None,
                     args: Mapping[str, Any] | None = None) -> "ModelBlob | ModelSpec":
    """Read the model to audit (default: the bundled speaker model) and check, once here, that it builds into a
    speaker model the audit can explain: a sample rate and an embedder.

    ``model``: any model spec (:func:`avxai.models.spec.model_source`: a bundled name such as ``"speakernet"`` or
    ``"resemblyzer"``, a checkpoint path with its JSON, or a checkpoint without a JSON with ``architecture``
    naming what it is, a TorchScript file, ``package.module:factory``, a model folder), with ``args`` its
    ``--model-arg`` values; or a source made already (returned after the same checks). Workers rebuild it from
    the returned source (``build()``, cached per process).
    """
    if isinstance(model, (ModelBlob, ModelSpec)):
        if architecture is not None or args:
            raise ValueError("architecture and model arguments apply to a model spec, not to a model source made "
                             "already: pass them to model_source instead")
        source = model
    else:
        source = model_source(model, architecture=architecture, args=args, default="speakernet")
    built = source.build()
    sample_rate_of(built, required=True)
    if embedder_of(built) is None:
        what = f"the {source.architecture} model" if isinstance(source, ModelBlob) else f"model {source.spec!r}"
        raise ValueError(f"{what} ({source.path}) has no embedder(); the audit explains a speaker-verification "
                         "score (the cosine between embeddings): give a speaker model (one whose embedder() maps a "
                         "waveform to embeddings, as the speaker adapters do)")
    return source
