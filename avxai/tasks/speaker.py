"""Speaker recognition: explain a speaker's class score (identification) or a verification cosine.

    import avxai
    model = avxai.models.load_model("speakernet")
    problem = avxai.tasks.speaker.build(model, avxai.tasks.speaker.SpeakerOptions(input=wav, sample_rate=16000))
    explanation = avxai.occlusion(problem.model, problem.modality, problem.scorer)

Identification explains the logit (``score="logit"``, default), probability or log-probability of
``target`` (a class index, one per input, or ``None``: the class predicted on the input). Verification
(``enroll`` given) explains the cosine between the embeddings of the input and the enrollment: the explained
model is then the speaker model's ``embedder()``. The spectrogram's STFT follows
:func:`avxai.tasks.audio.stft_for` (the speaker model has its own log-mel front end, so the default is
about 32 ms with a quarter hop: 512 / 128 at 16 kHz).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import Tensor, nn

from avxai.hygiene import evaluation_mode
from avxai.models.contract import embedder_of, sample_rate_of
from avxai.scorers.classification import ClassLogit, ClassLogProbability, ClassProbability, ClassSigmoid
from avxai.scorers.speaker import SpeakerCosine
from avxai.tasks.audio import AudioOptions, describe_input, read_waveform, spectrogram_for
from avxai.tasks.base import Problem, Task, read_segments

__all__ = ["SCORES", "SpeakerOptions", "SpeakerTask", "build"]

#: identification scores (``score=``) -> scorer class
SCORES = {"logit": ClassLogit, "probability": ClassProbability, "log-probability": ClassLogProbability,
          "sigmoid": ClassSigmoid}  # sigmoid: a binary (one-column) or multi-label classifier


@dataclass(frozen=True)
class SpeakerOptions(AudioOptions):
    """Options of the speaker task: :class:`~avxai.tasks.audio.AudioOptions` plus

    enroll : an enrollment file or waveform tensor (at ``sample_rate`` Hz, averaged to mono): explain the
        verification cosine instead of a class score. Several utterances of the speaker (a list of files or
        tensors, or files separated by commas): their L2-normalised embeddings are averaged.
    target : the class index (or one per input) for identification; ``None``: the predicted class.
    score : ``"logit"`` (default), ``"probability"`` or ``"log-probability"`` (identification);
        ``"cosine"`` or ``None`` with ``enroll``.
    """

    enroll: "str | Path | Tensor | Sequence[str | Path | Tensor] | None" = None
    target: "int | Sequence[int] | None" = None
    score: str | None = None


def build(model: nn.Module, options: SpeakerOptions) -> Problem:
    """The speaker problem: the input's spectrogram, and the class scorer or the verification cosine.

    Shape: input ``(channels, time)`` / ``(batch, channels, time)`` -> grid ``(freq or mel, frames)``.
    """
    if not isinstance(options, SpeakerOptions):
        raise TypeError(f"build takes SpeakerOptions, got {type(options).__name__}")
    rate = sample_rate_of(model, required=True)
    wav = read_waveform(options.input, rate, sample_rate=options.sample_rate, resample=options.resample,
                        mono=options.mono)
    modality = spectrogram_for(model, wav, rate, options)
    if options.enroll is not None:
        if options.target is not None:
            raise ValueError("target picks a class for identification; with enroll the score is the verification "
                             "cosine: give one or the other (--target or --enroll)")
        if options.score not in (None, "cosine"):
            raise ValueError(f"score {options.score!r} does not apply with enroll (the score is the cosine)")
        sources = options.enroll
        if isinstance(sources, str) and "," in sources:
            sources = [p.strip() for p in sources.split(",") if p.strip()]
        if isinstance(sources, (list, tuple)):  # several utterances: the mean of their unit embeddings
            enroll = [read_waveform(s, rate, sample_rate=options.sample_rate, resample=options.resample, mono=True,
                                    what=f"enrollment {k}") for k, s in enumerate(sources)]
        else:
            enroll = read_waveform(sources, rate, sample_rate=options.sample_rate, resample=options.resample,
                                   mono=True, what="enrollment")
        embedder = embedder_of(model, required=True)
        with evaluation_mode(embedder):  # the enrollment embedding as the explanation will see the model
            scorer = SpeakerCosine(embedder, enroll, sample_rate=rate)
        model = embedder
    else:
        if options.score not in (None, *SCORES):
            raise ValueError(f"score {options.score!r} is not a speaker-identification score: use "
                             f"{', '.join(SCORES)} (or cosine with an enrollment)")
        scorer = SCORES[options.score or "logit"](options.target)
    if options.enroll is not None:  # what the figures name as the score's target
        names = sources if isinstance(sources, (list, tuple)) else [sources]
        label = "cosine to the enrollment " + ", ".join(
            f"'{Path(n).stem}'" if isinstance(n, (str, Path)) else "(tensor)" for n in names)
    else:
        what = options.score or "logit"
        label = f"{what} of class {options.target}" if options.target is not None else \
            f"{what} of the class predicted on the input"
    return Problem(model=model, modality=modality, scorer=scorer,
                   metadata={"input": describe_input(options.input), "segments": read_segments(options.segments),
                             "target_label": label})


class SpeakerTask(Task, name="speaker", options=SpeakerOptions, model="speakernet", build=build,
        help="speaker identification (class logit) or verification (cosine to --enroll)"):
    """``--task speaker``: identification (``--target K`` or the predicted class;
    ``--score logit|probability|log-probability``) or verification (``--enroll E.wav``: cosine between the
    embeddings of the input and the enrollment)."""

    #: defaults of the methods for this task (the CLI applies them to the fields no flag, --set or --config gave,
    #: prints them and saves them in ``metadata["task_defaults"]``): extremal masks constant across frequency
    #: (they choose *when*: which turns carry the speaker score) on the input's own noise floor. The speaker
    #: score's question is about time (the task has no frequency region to score); with T-F masks and digital
    #: silence the masks of a real encoder (Resemblyzer) keep scattered bands and blobs that score above the real
    #: input. Measured in docs/results/extremal_real_models.md ("The speaker task's default"). For a T-F map:
    #: ``--set mask_axes=null --set perturbation=null``.
    method_defaults = {"extremal": {"mask_axes": ("time",), "perturbation": "floor"}}
