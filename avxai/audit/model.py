"""The audited model: a checkpoint from the registry, as bytes that travel to worker processes and Ray nodes.

Any registered architecture (:data:`avxai.models.registry.ARCHITECTURES`) whose model has an embedder
(:func:`avxai.models.contract.embedder_of`) and a sample rate can be audited: the bundled ``speakernet``, a
``.pt`` written by ``save_model`` with its JSON beside it, or a checkpoint without a JSON plus its
architecture (e.g. SpeechBrain's ``embedding_model.ckpt`` with ``architecture="ecapa-tdnn"``).
"""

from __future__ import annotations

from pathlib import Path

from avxai.models.contract import embedder_of, sample_rate_of
from avxai.models.registry import ModelBlob

__all__ = ["load_audit_model"]


def load_audit_model(model: "str | Path | None" = None, architecture: str | None = None) -> ModelBlob:
    """Read the model to audit (default: the bundled speaker model) and check, once here, that it builds into a
    speaker model the audit can explain: a sample rate and an embedder.

    ``model``: a bundled name (``"speakernet"``), a checkpoint path with its JSON, or a checkpoint without a JSON
    with ``architecture`` naming what it is (:meth:`ModelBlob.from_path`). Workers rebuild it from the
    returned blob (:meth:`ModelBlob.build`, cached per process), so no worker needs the file.
    """
    blob = ModelBlob.from_path(model, architecture=architecture)
    built = blob.build()
    sample_rate_of(built, required=True)
    if embedder_of(built) is None:
        raise ValueError(f"the {blob.architecture} model {blob.path} has no embedder(); the audit explains a "
                         "speaker-verification score (the cosine between embeddings): give a speaker model")
    return blob
