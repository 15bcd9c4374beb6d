"""Titles and labels read from an explanation's metadata, in the words a reader needs: which model, which
score against which target, the unmasked score, what a removed cell becomes, and how much was kept.

Sources and inputs are numbered from 1 in everything a person reads (``metadata["source"]`` is the 0-based
index the code uses). One sign convention everywhere: an attribution is the score drop when the cell is
removed (positive = the cell supports the score).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

__all__ = ["units_of", "model_phrase", "score_phrase", "perturbation_phrase", "method_phrase", "title_of",
           "attribution_label", "input_labels", "source_label", "growth_kind", "growth_values", "growth_text",
           "unmasked_of", "value_text"]


def _meta(explanation) -> dict:
    return explanation.metadata if isinstance(explanation.metadata, dict) else {}


def units_of(explanation) -> str:
    """The scorer's units (``metadata["scorer"]["units"]``), or ``""``."""
    scorer = _meta(explanation).get("scorer")
    return str(scorer.get("units", "")) if isinstance(scorer, dict) else ""


def source_label(k: int) -> str:
    """``"source 1"`` for the 0-based index 0: sources are counted from 1 where a person reads them."""
    return f"source {int(k) + 1}"


def model_phrase(explanation) -> str:
    """The model's name: ``metadata["model_name"]`` (the bundled name or the ``--model`` spec), else its class."""
    meta = _meta(explanation)
    name = meta.get("model_name") or meta.get("model") or ""
    return str(name)


def score_phrase(explanation) -> str:
    """What the score measures and against what, e.g. ``"cosine to the enrollment 'enroll_A'"`` or
    ``"SDR of source 2 against its reference"``; ``metadata["target_label"]`` (set by the task) wins."""
    meta = _meta(explanation)
    if meta.get("target_label"):
        return str(meta["target_label"])
    scorer = meta.get("scorer") if isinstance(meta.get("scorer"), dict) else {}
    kind = scorer.get("scorer", "score")
    if kind in ("SDR", "SISDR"):
        name = "SI-SDR" if kind == "SISDR" else "SDR"
        source = scorer.get("source", meta.get("source"))
        against = "its reference" if meta.get("score_against", "reference") == "reference" else \
            "the model's own output (no reference)"
        return f"{name} of {source_label(source) if source is not None else 'the output'} against {against}"
    if kind == "SpeakerCosine":
        return "cosine to the enrollment"
    target = scorer.get("target")
    if kind in ("ClassLogit", "ClassProbability", "ClassSigmoid", "ClassLogProbability"):
        what = {"ClassLogit": "logit", "ClassProbability": "probability", "ClassSigmoid": "sigmoid",
                "ClassLogProbability": "log-probability"}[kind]
        if isinstance(target, list) and len(set(target)) == 1:
            target = target[0]
        return f"{what} of class {target}" if isinstance(target, int) else f"{what} of the target class"
    return str(kind)


def perturbation_phrase(perturbation: Any) -> str:
    """A perturbation's repr in plain words: ``"Constant(value=0.0)"`` -> ``"set to 0 (silence / black)"``."""
    text = str(perturbation or "")
    if not text:
        return ""
    if text.startswith("("):  # one per part of an audio-visual input
        parts = re.findall(r"[A-Za-z]+\([^()]*(?:\([^()]*\))?[^()]*\)", text)
        return "; ".join(perturbation_phrase(p) for p in parts) or text
    m = re.match(r"(\w+)\((.*)\)$", text)
    name, args = (m.group(1), m.group(2)) if m else (text, "")
    if name == "Constant":
        value = re.search(r"value=([-\d.e]+)", args)
        v = float(value.group(1)) if value else 0.0
        return "set to 0 (silence / black)" if v == 0 else f"set to {v:g}"
    if name == "Mean":
        axes = re.findall(r"'(\w+)'", args)
        return f"replaced by the mean over {' and '.join(axes)}" if axes else "replaced by the mean"
    if name == "Noise":
        snr = re.search(r"snr_db=([-\d.e]+)", args)
        return f"replaced by noise {snr.group(1)} dB below the input" if snr else "replaced by noise"
    if name == "Floor":
        return "replaced by the input's noise floor"
    if name in ("Blur", "BlurPyramid"):
        return "blurred"
    if name == "Freeze":
        return "frozen (the last kept frame)"
    if name == "Shift":
        return "replaced by the input shifted in time"
    return text


def method_phrase(explanation) -> str:
    """The method in words: ``"extremal perturbation (preserve)"``, ``"occlusion"``, ``"saliency"``..."""
    meta = _meta(explanation)
    if explanation.method == "extremal":
        variant = meta.get("variant")
        return f"extremal perturbation ({variant})" if variant else "extremal perturbation"
    return str(explanation.method)


def unmasked_of(explanation, index: int = 0) -> float | None:
    """The score of the unperturbed input ``index``, or ``None``."""
    value = explanation.scores.get("unmasked")
    if value is None:
        return None
    flat = np.ravel(value[index].detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)[index])
    return float(flat[0]) if flat.size else None


def value_text(value: float, units: str) -> str:
    """``"10.7 dB"``, ``"0.583 cosine"``: three significant digits and the units."""
    return f"{value:.3g} {units}".rstrip()


def _perturbation_of(explanation) -> str:
    meta = _meta(explanation)
    modality = meta.get("modality") if isinstance(meta.get("modality"), dict) else {}
    parts = modality.get("parts") if isinstance(modality.get("parts"), dict) else None
    if parts:
        words = [f"{name} {perturbation_phrase(p.get('perturbation'))}" for name, p in parts.items()
                 if isinstance(p, dict) and p.get("perturbation")]
        if words:
            return "; ".join(words)
    if meta.get("part") and modality.get("perturbation"):  # one part of an audio-visual explanation: its own
        return perturbation_phrase(modality.get("perturbation"))
    return perturbation_phrase(meta.get("perturbation") or modality.get("perturbation"))


def input_labels(explanation) -> list[str]:
    """One label per explained input: ``metadata["labels"]`` or ``["targets"]`` when there is one per input,
    else ``"input 1"``, ``"input 2"``... (counted from 1)."""
    meta = _meta(explanation)
    labels = meta.get("labels") or meta.get("targets")
    if isinstance(labels, list) and len(labels) == explanation.batch_size:
        return [str(x) for x in labels]
    if explanation.batch_size == 1:
        return [""]
    return [f"input {i + 1}" for i in range(explanation.batch_size)]


def title_of(explanation, index: int = 0, extra: str = "") -> str:
    """Two lines: ``"<method> on <model>: <score phrase>"`` and ``"unmasked <score>; removed cells <words>"``."""
    if explanation.method == "pca-rgb":  # no score, no perturbation: an embedding of the model's features
        model = model_phrase(explanation)
        return "PCA-RGB of the model's features" + (f" on {model}" if model else "") + \
            ("\n" + extra if extra else "") + " (similar features, similar colours)"
    head = method_phrase(explanation)
    model = model_phrase(explanation)
    label = input_labels(explanation)[index] if explanation.batch_size > 1 else input_labels(explanation)[0]
    line1 = f"{head}" + (f" on {model}" if model else "") + f": {score_phrase(explanation)}" + \
        (f" ({label})" if label else "")
    bits = []
    unmasked = unmasked_of(explanation, index)
    if unmasked is not None:
        bits.append(f"unmasked {value_text(unmasked, units_of(explanation))}")
    words = _perturbation_of(explanation)
    if words:
        bits.append(f"removed cells: {words}")
    if extra:
        bits.append(extra)
    wise = _meta(explanation).get("segment_wise") or {}
    line3 = ""
    if wise.get("count"):  # the question changed: say so where the figure is read (avxai.tasks.segmented)
        line3 = (f"\nsegment-wise: {wise['count']} segments of {float(wise.get('seconds', 0)):g} s, "
                 "each explained on its own")
    return line1 + ("\n" + "; ".join(bits) if bits else "") + line3


def attribution_label(explanation) -> str:
    """The colour-bar label of a signed attribution, with units: the score drop when the cell is removed."""
    units = units_of(explanation)
    unit = f" ({units})" if units else ""
    if explanation.masks is not None:
        return "mask (1 = kept)"
    method = explanation.method
    if method == "occlusion":
        return f"score drop when removed{unit}"
    if method == "integrated-gradients":  # sums to the score drop when every cell is removed (completeness)
        return f"score drop when removed (IG){unit}"
    if method in ("saliency", "smoothgrad"):
        meta = _meta(explanation)
        absolute = meta.get("absolute", (meta.get("config") or {}).get("absolute", True))
        per = f" ({units} per unit mask)" if units else ""
        return f"|d score / d mask|{per}" if absolute else f"d score / d mask: drop when removed{per}"
    if method == "gradcam":
        return "Grad-CAM (a.u., > 0 supports)"
    return f"attribution{unit}"


# -- area growth ---------------------------------------------------------------------------------------------
def growth_kind(units: str, unmasked: "float | Sequence[float] | None") -> str:
    """How preserved scores compare with the unmasked one: ``"db"`` (dB scores: differences in dB),
    ``"ratio"`` (positive linear scores: preserved / unmasked) or ``"score"`` (other linear scores, which can
    be negative or cross 0: the preserved score itself beside the unmasked one)."""
    if "db" in str(units).lower():
        return "db"
    values = np.atleast_1d(np.asarray(unmasked if unmasked is not None else [np.nan], dtype=float))
    bounded = str(units).startswith("probability") or units == "cosine"  # not logits: they cross 0 freely
    return "ratio" if bounded and np.all(np.isfinite(values)) and np.all(values > 0) else "score"


def growth_values(explanation, index: int = 0) -> tuple[list[float], np.ndarray] | None:
    """``(areas, preserved scores)`` of the area-growth curve of input ``index`` in the scorer's units
    (``scores["area_growth"]`` times the unmasked score); ``None`` when the explanation has none."""
    growth = explanation.scores.get("area_growth")
    areas = _meta(explanation).get("growth_areas") or explanation.areas
    unmasked = unmasked_of(explanation, index)
    if growth is None or areas is None or unmasked is None:
        return None
    ratio = growth[index].detach().cpu().numpy() if hasattr(growth, "detach") else np.asarray(growth)[index]
    return list(areas), np.asarray(ratio, dtype=float) * unmasked


def growth_text(explanation, index: int = 0) -> str:
    """The area-growth curve in words, e.g. ``"preserved - unmasked: -2.0, -1.7 dB at areas 0.05, 0.1"``."""
    values = growth_values(explanation, index)
    if values is None:
        return ""
    areas, preserved = values
    units = units_of(explanation)
    unmasked = unmasked_of(explanation, index)
    kind = growth_kind(units, unmasked)
    at = "at areas " + ", ".join(f"{a:g}" for a in areas)
    if kind == "db":
        return "preserved - unmasked: " + ", ".join(f"{v - unmasked:+.2f}" for v in preserved) + f" {units} {at}"
    if kind == "ratio":
        return "preserved / unmasked: " + ", ".join(f"{v / unmasked:.2f}" for v in preserved) + f" {at}"
    return "preserved: " + ", ".join(f"{v:.3g}" for v in preserved) + f" {units} {at} (unmasked " \
        f"{value_text(unmasked, units)})".replace("  ", " ")

