"""One audit trial end to end: decode, build the verification problem, explain, measure, render.

Per trial (:func:`run_trial`): the verification score (cosine between the embeddings of the test and the
enrollment), the explanation of that score on the test utterance's spectrogram by the configured method,
and statistics of the masks at the audit's areas. The masks are what the explanation holds: a method that
returns masks (extremal) gives its own at those areas; a method that returns only an attribution
(occlusion, saliency, gradcam, ...) gives the masks of its top-``area`` cells.

* ``preserved`` / ``deleted``: the score of the input that keeps only the mask of each area, and of the
  input with that mask removed (the explanation's own scores when it has them);
* ``curve``: the deletion curve, the score as the most relevant cells are removed step by step;
* ``speech``: mask mass in speech-active frames (energy-based voice activity) vs non-speech frames, the
  excess of non-speech mass over the non-speech share of the frames, and the score of the input reduced to
  its speech frames and to its non-speech frames;
* ``target`` / ``interferer``: mask mass in the labelled segments of the test utterance (when labelled);
* ``criteria``: the per-trial values the report flags trials by (:data:`CRITERIA_DOC`).

With media, the trial's folder ``trials/<id>/`` holds the figure, the enrollment and the original / preserved
/ deleted test audio, and ``arrays.npz`` (:func:`trial_arrays`).
"""

from __future__ import annotations

import io
import math
import time
import traceback
from typing import Any, Iterable

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from avxai.audit.config import AuditConfig
from avxai.audit.decode import TrialPayload, decode_audio
from avxai.audit.figures import trial_figure
from avxai.audit.outcome import TrialOutcome, failed_outcome
from avxai.audit.speech import mask_mass, voice_activity
from avxai.engine import evaluate_masks, mask_media, top_fraction_mask
from avxai.explanation import Explanation
from avxai.hygiene import evaluation_mode
from avxai.methods import get_method
from avxai.metrics.faithfulness import deletion_curve
from avxai.metrics.localisation import frames_in_segments
from avxai.modalities.base import Modality
from avxai.models.contract import sample_rate_of
from avxai.tasks import speaker
from avxai.tasks.audio import stft_for

__all__ = ["run_trial", "run_batch", "explanation_masks", "trial_criteria", "trial_arrays", "CRITERIA_DOC"]

#: the per-trial values the report's flags are computed from (``record["criteria"]``; None: does not apply)
CRITERIA_DOC = {
    "interferer_mass": "share of the smallest-area mask on the labelled interfering talker; target trials with "
                       "labelled interferer segments only (in a non-target trial every talker is someone else)",
    "nonspeech_score": "cosine score of the test reduced to its non-speech frames (silence, noise: what the "
                       "channel leaves); None when every frame is speech",
    "nonspeech_reliance": "mask mass in non-speech frames minus the share of non-speech frames, mean over areas",
}


def _round(values: Any, digits: int = 6) -> Any:
    if isinstance(values, (list, tuple)):
        return [_round(v, digits) for v in values]
    if values is None:
        return None
    v = float(values)
    return round(v, digits) if math.isfinite(v) else None


def _wav_bytes(wave: Tensor, rate: int) -> bytes:
    """``(channels, time)`` float audio -> 16-bit PCM WAV bytes (scaled, never clipped, when it exceeds 1)."""
    w = wave.detach().cpu().float()
    peak = float(w.abs().max()) if w.numel() else 0.0
    if peak > 1.0:
        w = w / peak * 0.99
    buf = io.BytesIO()
    sf.write(buf, w.numpy().T, int(rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def explanation_masks(explanation: Explanation, areas: list[float]) -> tuple[Tensor, dict[str, list[float]]]:
    """The masks at ``areas`` of the first input, and the per-area scores the explanation already holds.

    Masks the explanation holds (one per area, ``explanation.areas``) are taken at ``areas`` with their
    ``preserved`` / ``deleted`` scores; an explanation with an attribution only gives the masks of its
    top-``area`` cells (:func:`avxai.engine.top_fraction_mask`) and no scores (the caller evaluates them).

    Shape: masks ``(K, *grid)`` for ``K = len(areas)``; scores: name -> ``K`` floats.
    """
    if explanation.masks is None:
        return torch.cat([top_fraction_mask(explanation.attribution[:1], a) for a in areas]), {}
    have = [float(a) for a in (explanation.areas or [])]
    missing = [a for a in areas if a not in have]
    if missing or explanation.masks.shape[1] != len(have):
        raise ValueError(f"{explanation.method} returned masks at areas {have}, not at the audit's areas {missing}; "
                         "give the method the audit's areas (its config's 'areas' field)")
    index = [have.index(a) for a in areas]
    scores = {name: explanation.scores[name][0, index].tolist() for name in ("preserved", "deleted")
              if name in explanation.scores and tuple(explanation.scores[name].shape[1:]) == (len(have),)}
    return explanation.masks[0, index].detach(), scores


def run_trial(payload: TrialPayload, model, config: AuditConfig, *, media: bool = True) -> TrialOutcome:
    """Explain one trial's verification score and measure where the evidence lies.

    Never raises for a bad trial: any exception becomes a failed record (:func:`failed_outcome`).
    ``model``: a speaker model with a sample rate and an embedder (what :func:`avxai.audit.model.load_audit_model`
    checks).
    """
    start = time.perf_counter(), time.process_time()
    trial = payload.trial
    if payload.error is not None:
        return failed_outcome(trial, payload.error)
    try:
        return _run_trial(payload, model, config, start, media)
    except Exception as err:  # recorded with the trial; the audit goes on
        outcome = failed_outcome(trial, err, time.perf_counter() - start[0])
        if not isinstance(err, (ValueError, TypeError, FileNotFoundError)):
            outcome.record["error"]["traceback"] = traceback.format_exc(limit=8)
        return outcome


def _run_trial(payload: TrialPayload, model, config: AuditConfig, start: tuple[float, float],
               media: bool) -> TrialOutcome:
    trial = payload.trial
    rate = sample_rate_of(model, required=True)
    n_fft, hop_length = stft_for(model, rate, config.n_fft, config.hop_length)
    enroll = decode_audio("enroll", trial.enroll, payload.enroll, rate, n_fft, config)  # (1, 1, time)
    test = decode_audio("test", trial.test, payload.test, rate, n_fft, config)
    # the verification problem: the embedder, the test spectrogram, the cosine to the enrollment's embedding
    problem = speaker.build(model, speaker.SpeakerOptions(
        input=test, sample_rate=rate, enroll=enroll, n_fft=n_fft, hop_length=hop_length, n_mels=config.n_mels,
        perturbation=config.perturbation))
    embedder, modality, scorer = problem.model, problem.modality, problem.scorer
    duration = test.shape[-1] / rate
    for name in ("target_segments", "interferer_segments"):
        late = [s for s in getattr(trial, name) if s[0] >= duration]
        if late:
            raise ValueError(f"{name} {late} start after the end of the {duration:.2f} s test utterance {trial.test}")
    explanation = get_method(config.method)(embedder, modality, scorer, config.method_config())
    score = float(explanation.scores["unmasked"][0])
    grid = modality.grid_shape
    areas = list(config.areas)
    attribution = explanation.attribution  # (1, F, T)
    masks, known = explanation_masks(explanation, areas)  # (K, F, T)
    times = np.asarray(explanation.coordinates["time"], dtype=np.float64)
    vad = voice_activity(test, rate, config.vad_frame_s, config.vad_threshold_db, config.vad_floor_margin_db)
    vad_len = max(int(round(config.vad_frame_s * rate)), 1)  # samples per VAD frame, as voice_activity cuts them
    vad_index = np.clip(np.floor(times * rate / vad_len).astype(np.int64), 0, vad.shape[0] - 1)
    speech = torch.as_tensor(vad.numpy()[vad_index])  # (T,) bool, per STFT frame
    only = {"speech": speech, "nonspeech": ~speech}
    extra_masks = [torch.zeros(grid, dtype=masks.dtype).index_fill_(1, m.nonzero().flatten(), 1.0)
                   for m in only.values() if bool(m.any())]
    # one batch of forward passes: the per-area scores the explanation lacks, then the speech-only inputs
    probe = {name: rows for name, rows in (("preserved", masks), ("deleted", 1.0 - masks)) if name not in known}
    stacked = list(probe.values()) + [m.unsqueeze(0) for m in extra_masks]
    with evaluation_mode(embedder):
        values = (evaluate_masks(embedder, modality, scorer, torch.cat(stacked), config.batch_size).tolist()
                  if stacked else [])
    k = len(areas)
    for name in probe:
        known[name], values = values[:k], values[k:]
    only_scores = {name: (values.pop(0) if bool(m.any()) else None) for name, m in only.items()}
    curve = deletion_curve(embedder, modality, scorer, attribution, steps=config.curve_steps,
                           batch_size=config.batch_size, normalise="none")
    curve_scores = curve.raw[0].tolist()
    speech_mass = mask_mass(masks, speech)
    nonspeech_fraction = float((~speech).double().mean())
    nonspeech_mass = [1.0 - m for m in speech_mass]
    excess = [m - nonspeech_fraction for m in nonspeech_mass]
    record = {
        **trial.describe(),
        "status": "ok",
        "error": None,
        "score": _round(score),
        "duration_s": round(duration, 4),
        "sample_rate": rate,
        "areas": areas,
        "display_area": config.display_area,
        "preserved": _round(known["preserved"]),
        "deleted": _round(known["deleted"]),
        "curve": {"fractions": _round(curve.fractions.tolist()), "scores": _round(curve_scores),
                  "drop": _round([score - s for s in curve_scores])},
        "speech": {
            "frames_fraction": _round(1.0 - nonspeech_fraction),
            "mass": _round(speech_mass),
            "nonspeech_mass": _round(nonspeech_mass),
            "nonspeech_excess": _round(excess),
            "score_speech_only": _round(only_scores["speech"]),
            "score_nonspeech_only": _round(only_scores["nonspeech"]),
        },
        "nonspeech_reliance": _round(float(np.mean(excess))),
    }
    for name, segs in (("target", trial.target_segments), ("interferer", trial.interferer_segments)):
        if segs:
            inside = frames_in_segments(times, [{"start_s": s, "end_s": e} for s, e in segs])
            record[name] = {"frames_fraction": _round(float(inside.double().mean())),
                            "mass": _round(mask_mass(masks, inside))}
        else:
            record[name] = None
    record["criteria"] = trial_criteria(record)
    files: dict[str, bytes] = {}
    if media:
        record["files"], files = _media(explanation, modality, masks, times, speech, trial, record, config)
        names = {"enroll": f"trials/{trial.id}/enroll.wav", "arrays": f"trials/{trial.id}/arrays.npz"}
        files[names["enroll"]] = _wav_bytes(enroll[0], rate)
        files[names["arrays"]] = trial_arrays(explanation, masks, areas, times, speech)
        record["files"].update(names)
    # timing (the only fields that differ between runs): wall seconds and CPU seconds of this process
    record["seconds"] = round(time.perf_counter() - start[0], 3)
    record["cpu_seconds"] = round(time.process_time() - start[1], 3)
    return TrialOutcome(record, files)


def trial_criteria(record: dict) -> dict:
    """The values of :data:`CRITERIA_DOC` for a finished record (JSON types; None where one does not apply)."""
    interferer = record.get("interferer")
    return {
        "interferer_mass": (interferer["mass"][0] if interferer and record["label"] == 1 else None),
        "nonspeech_score": record["speech"]["score_nonspeech_only"],
        "nonspeech_reliance": record["nonspeech_reliance"],
    }


def trial_arrays(explanation: Explanation, masks: Tensor, areas: list[float], times: np.ndarray,
                 speech: Tensor) -> bytes:
    """``arrays.npz`` bytes (``numpy.load`` reads it, no pickle): ``spectrogram`` (the explained magnitude),
    ``attribution``, ``masks`` (one per area, 1 = kept), ``areas``, ``times_s``, ``frequencies`` (Hz, or mel band
    centres) and ``speech`` (voice activity per frame).

    Shape: spectrogram, attribution ``(freq, frames)``; masks ``(K, freq, frames)``; times_s, speech ``(frames,)``.
    """
    buf = io.BytesIO()
    np.savez_compressed(
        buf, spectrogram=explanation.grid[0].detach().cpu().numpy().astype(np.float32),
        attribution=explanation.attribution[0].detach().cpu().numpy().astype(np.float32),
        masks=masks.detach().cpu().numpy().astype(np.float32), areas=np.asarray(areas, dtype=np.float64),
        times_s=np.asarray(times, dtype=np.float64),
        frequencies=np.asarray(explanation.coordinates[explanation.axes[0]], dtype=np.float64),
        speech=speech.numpy().astype(bool))
    return buf.getvalue()


def _media(explanation: Explanation, modality: Modality, masks: Tensor, times: np.ndarray, speech: Tensor,
           trial, record: dict, config: AuditConfig) -> tuple[dict[str, str], dict[str, bytes]]:
    """The trial's files: original / preserved / deleted WAVs at the display area, and the figure.

    Returns (key -> relative path, relative path -> bytes)."""
    d = list(config.areas).index(config.display_area)
    shown = masks[d].unsqueeze(0)
    rendered = mask_media(modality, {"preserved": shown, "deleted": 1.0 - shown})
    folder = f"trials/{trial.id}"
    names, files = {}, {}
    for key in ("original", "preserved", "deleted"):
        _, wav, sr = rendered[key]
        names[key] = f"{folder}/{key}.wav"
        files[names[key]] = _wav_bytes(wav[0], sr)
    names["figure"] = f"{folder}/figure.png"
    files[names["figure"]] = trial_figure(
        grid=explanation.grid[0].numpy(), mask=masks[d].numpy(), times=times,
        freqs=np.asarray(explanation.coordinates[explanation.axes[0]]), mel=config.n_mels is not None,
        speech=speech.numpy(), segments=trial.segments(), record=record)
    return names, files


def run_batch(payloads: Iterable[TrialPayload], model_source, config: AuditConfig,
              media: bool = True) -> list[TrialOutcome]:
    """Run trials one after the other with the model built from ``model_source`` (what a worker or a Ray task
    does; ``model_source.build()`` is cached per process)."""
    model = model_source.build()
    return [run_trial(p, model, config, media=media) for p in payloads]
