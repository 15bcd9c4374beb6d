"""The command line's parser: ``avxai demo``, ``avxai explain``, ``avxai audit``, ``avxai inspect`` and their flags
(the commands themselves run in :mod:`avxai.cli`, :mod:`avxai.explain_command`, ...)."""

from __future__ import annotations

import argparse

from avxai.audit.command import add_audit_parser
from avxai.demo import DEMO_MODELS
from avxai.inspect_command import add_inspect_parser
from avxai.memory import parse_size
from avxai.methods import METHODS
from avxai.models.registry import describe_architectures
from avxai.models.spec import spec_forms
from avxai.perturbations import PERTURBATION_NAMES
from avxai.tasks import TASKS
from avxai.version import __version__

__all__ = ["SHORTCUTS", "TASK_FLAGS", "build_parser"]

#: flags of the "task inputs" and "audio" groups: each is passed to the task when its options class has the field
TASK_FLAGS = ("input", "reference", "enroll", "source", "target", "segments", "score", "stream", "region", "reduce",
              "threshold", "n_fft", "hop_length", "n_mels", "perturbation", "resample", "mono", "fps_convert", "face",
              "face_confidence", "min_face_size", "detect_every", "track_cache")
#: method-config fields with a flag of their own
SHORTCUTS = ("areas", "window", "stride", "iterations", "batch_size", "seed")


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    return parse


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (0 is refused, never replaced by a default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avxai", description="Explain audio-visual and speech models: which time-frequency regions of the "
                                  "spectrogram and which face regions carry a model's result.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the installed version (from the package metadata) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="explain the bundled speaker model on the bundled A-B-A utterance",
                          description="Load the bundled speaker-identification model and A-B-A utterance (speaker A, "
                                      "then B, then A), explain speaker A's logit with occlusion on the spectrogram, "
                                      "and write the explanation (JSON, arrays, figure, WAVs) to --out.")
    demo.add_argument("--out", default="avxai-out", help="output folder (default: %(default)s)")
    demo.add_argument("--method", default="occlusion", choices=sorted(METHODS), help="method (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--model", default="speakernet", choices=DEMO_MODELS,
                      help="speakernet: the bundled model on generated speech; resemblyzer: Resemblyzer's pretrained "
                           "speaker encoder on real recordings, the cosine to A's enrollment (pip install "
                           "avxai[resemblyzer]) (default: %(default)s)")

    ex = sub.add_parser("explain", help="explain one input of a model", description=(
        "Explain one input of a model. Task options (--input, --reference, ...) are read by the tasks named in "
        "their help; giving one that the chosen task does not read is an error."))
    ex.add_argument("--task", required=True, choices=sorted(TASKS),
                    help="; ".join(f"{n}: {t.help}" for n, t in sorted(TASKS.items())))
    ex.add_argument("--method", default="occlusion", choices=sorted(METHODS), help="method (default: %(default)s)")
    ex.add_argument("--out", required=True, help="output folder for explanation.json, arrays.npz, figures, media")
    g = ex.add_argument_group("task inputs")
    g.add_argument("--input", required=True, help="audio (.wav/.flac) or video (.mp4) to explain")
    g.add_argument("--reference", help="clean reference audio, comma-separated for several sources (enhancement, "
                                       "separation, av-enhancement); without it the SDR is taken against the model's "
                                       "own unmasked output")
    g.add_argument("--enroll", help="enrollment audio: explain the verification cosine score (speaker); several "
                                    "files separated by commas: the mean of their unit embeddings")
    g.add_argument("--source", type=int, help="which separated source to explain, counted from 1 (separation)")
    g.add_argument("--target", type=int, help="target class index; default: the class predicted on the input "
                                               "(speaker); the output column of a (batch, frames, classes) model "
                                               "(frames)")
    g.add_argument("--segments", help="JSON file of labelled segments (start_s, end_s, label): drawn on figures, "
                                      "and the share of the evidence inside each label's segments is printed and "
                                      "saved (metadata segment_mass)")
    g.add_argument("--model", metavar="SPEC",
                   help="the model; default: the task's bundled reference model (frames has none). Accepted forms: "
                        + spec_forms().replace("%", "%%"))
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the --model (YAML value), repeatable: constructor arguments of an avxai "
                        "architecture, arguments of a package.module:factory, options of an adapter (e.g. "
                        "sample_rate=16000, chunk=512)")
    g.add_argument("--architecture", help="the architecture of a --model checkpoint without its JSON: "
                                          + describe_architectures())
    g.add_argument("--stream", choices=["av", "video", "audio"],
                   help="which input stream to explain (av-enhancement): av = spectrogram and face video on one "
                        "joint grid (default), video = the face crops with the sound kept, audio = the spectrogram "
                        "with the face kept")
    g.add_argument("--score",
                   choices=["logit", "probability", "log-probability", "sigmoid", "cosine", "sdr", "si-sdr"],
                   help="what to explain; default per task (speaker: logit, or cosine with --enroll; "
                        "log-probability counts evidence for other speakers against the target; enhancement/"
                        "separation: sdr; frames: probability per frame, or logit, or sigmoid of a per-frame logit)")
    g.add_argument("--region", metavar="START-END",
                   help="frames: score the frames between START and END seconds (e.g. 1.0-2.5), 'all' frames, or "
                        "'detected' (default: the frames the model detects on the input, see --threshold)")
    g.add_argument("--reduce", choices=["mean", "max"], help="frames: mean (default) or max over the scored frames")
    g.add_argument("--threshold", type=float,
                   help="frames: a frame is detected when its probability is at least this (default 0.5)")
    a = ex.add_argument_group("audio")
    a.add_argument("--n-fft", type=_positive_int, help="STFT size in samples (default: the model's own STFT when it has one, "
                                             "as the enhancement and AV models do; else about 32 ms: 512 at 16 kHz, 256 at 8 kHz)")
    a.add_argument("--hop-length", type=_positive_int,
                   help="STFT hop in samples (default: the model's own; else n_fft / 4)")
    a.add_argument("--n-mels", type=_positive_int, help="mask on this many mel bands instead of linear frequency bins")
    a.add_argument("--resample", action="store_true",
                   help="resample inputs to the model's sample rate (otherwise a mismatch is an error)")
    a.add_argument("--mono", action="store_true", help="average the input's channels")
    a.add_argument("--perturbation", help="what masked cells become: " + ", ".join(PERTURBATION_NAMES) +
                                          " (NAME:VALUE sets an SNR in dB or a blur sigma in cells); av-enhancement "
                                          "also takes AUDIO,VIDEO, one per stream (e.g. zero,spatial-blur:8)")
    v = ex.add_argument_group("video (av-enhancement)")
    v.add_argument("--fps-convert", action="store_true",
                   help="convert the clip's frames to the model's frame rate while decoding (nearest frame in time, "
                        "as FFmpeg's fps filter; otherwise another rate is an error)")
    v.add_argument("--face", help="which face the crops follow: 'largest' (default: in each shot the face with the "
                                  "most box area over time) or a face track number from the metadata's "
                                  "face_track.face_tracks (0 = the most prominent face of the clip)")
    v.add_argument("--face-confidence", type=float, help="MTCNN probability a face needs (default 0.9)")
    v.add_argument("--min-face-size", type=_positive_int, help="smallest face looked for, in pixels (default 20)")
    v.add_argument("--detect-every", type=_positive_int,
                   help="run the face detector on every N-th frame of a shot, interpolating between (default 1, "
                        "or 3 for frames over 640 x 360 pixels)")
    v.add_argument("--track-cache", help="folder for cached face detections, keyed by the clip's hash and the "
                                         "tracker settings (default ~/.cache/avxai/tracks, or $AVXAI_CACHE_DIR/"
                                         "tracks); 'off': detect every time")
    m = ex.add_argument_group("method configuration (each must exist in the chosen method's config)")
    m.add_argument("--config", help="YAML file of method config fields (a mapping, or a mapping under the method name)")
    m.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one config field (YAML value), repeatable, e.g. --set iterations=200")
    m.add_argument("--areas", type=_csv(float), help="extremal: mask areas, e.g. 0.05,0.1,0.2")
    m.add_argument("--window", type=_csv(int), help="occlusion: window in cells per grid axis, e.g. 16,8")
    m.add_argument("--stride", type=_csv(int), help="occlusion: stride in cells per grid axis")
    m.add_argument("--iterations", type=int, help="optimisation steps (extremal)")
    m.add_argument("--batch-size", type=int, help="perturbed inputs per forward pass")
    m.add_argument("--seed", type=int, help="random seed")
    ex.add_argument("--threads", type=_positive_int,
                    help="torch CPU threads (default: torch's own); recorded in explanation.json: the same seed and "
                         "threads give bitwise-equal results")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    r = ex.add_argument_group("resources")
    r.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                   help="memory budget of the batches of perturbed inputs, e.g. 2G or 800M (default: 1G, at most half "
                        "of the memory available); batches are sized to fit, and a long input's extremal rows run in "
                        "chunks; the plan printed before the run says what was chosen")
    r.add_argument("--device", help="where the model and the explanation run: cpu, cuda, cuda:1 (default: where "
                                    "the model is)")

    r.add_argument("--segment-seconds", type=_seconds, metavar="S",
                   help="explain the input in consecutive segments of S seconds, each on its own (the model sees one "
                        "segment at a time: a different question, stated in the output), stitched along time "
                        "(speaker, enhancement, separation, av-enhancement). Default: chosen when one row of the "
                        "whole input does not fit --max-memory (extremal), and printed; 0: never, the whole input")
    r.add_argument("--segment-context", type=_seconds, metavar="C",
                   help="seconds of context on each side of a segment, explained and then cut away (default: a "
                        "tenth of the segment, at most 0.5)")

    add_audit_parser(sub)
    add_inspect_parser(sub)
    return parser


def _memory_size(text: str) -> int:
    """argparse type: a memory size (2G, 800M, bytes)."""
    try:
        return parse_size(text)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None

def _seconds(text: str) -> float:
    """argparse type: seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value
