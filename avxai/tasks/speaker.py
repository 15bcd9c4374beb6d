"""Speaker recognition: explain a speaker's class logit (identification) or a verification score."""

from __future__ import annotations

import argparse

from avxai.io.audio import load_audio
from avxai.modalities.spectrogram import Spectrogram
from avxai.scorers.classification import ClassLogit, ClassLogProbability, ClassProbability
from avxai.scorers.speaker import SpeakerCosine
from avxai.tasks.base import Problem, Task, read_segments


class SpeakerTask(Task):
    """``--task speaker``: identification (``--target K`` or the predicted class;
    ``--score logit|probability|log-probability``)
    or verification (``--enroll E.wav``: cosine between the embeddings of the input and the enrollment)."""

    name = "speaker"
    help = "speaker identification (class logit) or verification (cosine to --enroll)"
    options = frozenset({"input", "enroll", "target", "segments", "model_checkpoint", "score"})

    def prepare(self, args: argparse.Namespace) -> Problem:
        from avxai.models.checkpoint import load_speaker_model

        model = load_speaker_model(args.model_checkpoint)
        rate = model.sample_rate
        wav, sr = load_audio(args.input, sample_rate=rate, resample=args.resample, mono=args.mono)
        if wav.shape[1] != 1:
            raise ValueError(f"{args.input} has {wav.shape[1]} channels but the speaker model takes mono audio; "
                             "pass --mono to average the channels")
        n_fft = args.n_fft or 512  # the speaker model has its own log-mel front end: any STFT can feed it
        modality = Spectrogram(wav, sr, n_fft=n_fft, hop_length=args.hop_length or n_fft // 4, n_mels=args.n_mels,
                               perturbation=args.perturbation or "zero")
        if args.enroll:
            if args.target is not None:
                raise ValueError("--target picks a class for identification; with --enroll the score is the "
                                 "verification cosine: give one or the other")
            if args.score not in (None, "cosine"):
                raise ValueError(f"--score {args.score} does not apply with --enroll (the score is the cosine)")
            enroll, _ = load_audio(args.enroll, sample_rate=rate, resample=args.resample, mono=True)
            embedder = model.embedder()
            scorer = SpeakerCosine(embedder, enroll)
            model = embedder
        else:
            scorers = {None: ClassLogit, "logit": ClassLogit, "probability": ClassProbability,
                       "log-probability": ClassLogProbability}
            if args.score not in scorers:
                raise ValueError(f"--score {args.score} is not a speaker-identification score: use logit, probability "
                                 "or log-probability")
            scorer = scorers[args.score](args.target)
        return Problem(model=model, modality=modality, scorer=scorer,
                       metadata={"input": str(args.input), "segments": read_segments(args.segments)})
