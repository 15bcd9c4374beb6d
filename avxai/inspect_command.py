"""``avxai inspect filters|embeddings|top-segments|maximise``: what a model learned, written to ``--out``.

The flags become the inspection tools' inputs (:mod:`avxai.inspect`); the model comes from ``--model SPEC``
through the one resolver (:func:`avxai.models.spec.resolve_model`), audio files through
:func:`avxai.io.audio.load_audio` at the model's rate. Errors are ``ValueError``/``TypeError`` that the CLI prints
on one line.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from avxai.config import build_config
from avxai.inspect.conditions import apply_condition, parse_conditions
from avxai.inspect.embeddings import PROJECTIONS, embed, embedding_map, nearest
from avxai.inspect.filters import first_layer_filters
from avxai.inspect.maximise import MaximiseConfig, class_objective, direction_objective, maximise, unit_objective
from avxai.inspect.maximise_video import VideoMaximiseConfig, maximise_video
from avxai.inspect.outputs import (write_embedding_map, write_filters, write_maximised, write_maximised_video,
                                   write_top_patches, write_top_segments)
from avxai.inspect.sources import separate_sources
from avxai.inspect.top_patches import top_patches
from avxai.inspect.top_segments import TopSegmentsConfig, top_segments
from avxai.faces import FaceTracker
from avxai.io.audio import load_audio
from avxai.modalities.video import FaceVideo
from avxai.models.contract import crop_size_of, embedder_of, fps_of, sample_rate_of
from avxai.models.spec import parse_model_args, resolve_model, spec_forms
from avxai.safety import check_output_dir

__all__ = ["add_inspect_parser", "run_inspect_command", "read_manifest"]

TOOLS = ("filters", "embeddings", "top-segments", "maximise")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="the model: " + spec_forms().replace("%", "%%"))
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the --model (YAML value), repeatable")
    p.add_argument("--architecture", help="the architecture of a --model checkpoint without its JSON")
    p.add_argument("--out", required=True, help="output folder: inspect.json, arrays.npz, a figure, WAVs, index.html")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")


def _inputs(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--input", nargs="+", default=[], required=required, metavar="FILE",
                   help="audio files (channels averaged)")
    p.add_argument("--resample", action="store_true", help="resample inputs to the model's rate (else a mismatch "
                                                           "is an error)")


def add_inspect_parser(sub) -> argparse.ArgumentParser:
    """The ``inspect`` command and its four tools."""
    ins = sub.add_parser("inspect", help="what a model learned: filters, embedding maps, top segments, maximisation",
                         description="What a model learned (not where it looks for one input): first-layer filters, "
                                     "embedding maps with silhouettes, maximally activating segments of a unit, "
                                     "activation maximisation on the spectrogram.")
    tools = ins.add_subparsers(dest="tool", metavar="TOOL", required=True)
    f = tools.add_parser("filters", help="first-layer filters as frequency responses (Hz, dB) or images")
    _common(f)
    f.add_argument("--layer", help="dotted layer path (default: the first convolution, linear or recurrent layer)")
    e = tools.add_parser("embeddings", help="PCA / t-SNE / UMAP maps of utterance embeddings, silhouettes, neighbours")
    _common(e)
    _inputs(e, required=False)
    e.add_argument("--labels", metavar="CSV", help="manifest: a column 'path' (relative to the CSV), optional "
                                                   "'start_s'/'end_s', every other column a labelling (speaker, "
                                                   "condition, source, ...); without it each --input is its own "
                                                   "speaker")
    e.add_argument("--layer", help="embed this layer's output averaged over positions (default: the model's "
                                   "embedder, else its output)")
    e.add_argument("--window", type=float, help="cut each utterance into windows of this many seconds")
    e.add_argument("--separator", metavar="SPEC", help="the inputs are mixtures: separate each with this model "
                                                       "(same SPEC forms as --model) and embed every separated source "
                                                       "with --model, labelled by its output slot and its mixture")
    e.add_argument("--separator-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the --separator (YAML value), repeatable")
    e.add_argument("--conditions", default="clean", help="recording conditions applied to every utterance, e.g. "
                                                         "clean,noise:10,telephone,lowpass:2000,gain:-20 "
                                                         "(default: %(default)s)")
    e.add_argument("--projections", default="pca,tsne,umap", help="from " + ", ".join(PROJECTIONS) +
                                                                  " (default: %(default)s; UMAP only where installed)")
    e.add_argument("--query", type=int, default=0, help="index of the query utterance (default: %(default)s)")
    e.add_argument("--neighbours", type=int, default=5, help="nearest neighbours listed (default: %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="seed of t-SNE / UMAP and of the noise conditions")
    t = tools.add_parser("top-segments", help="the time-frequency patches that drive one unit of a layer")
    _common(t)
    _inputs(t, required=True)
    t.add_argument("--layer", required=True, help="dotted layer path, e.g. tdnn.2 or lstm")
    t.add_argument("--unit", type=int, default=0, help="channel of the layer (default: %(default)s)")
    t.add_argument("--top", type=int, help="segments shown (default 8)")
    t.add_argument("--video", action="store_true",
                   help="the inputs are video files: track the face (MTCNN), crop it at the model's crop_size and rank "
                        "face-crop patches of a visual layer (an audio-visual model hears quiet seeded noise)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a TopSegmentsConfig field (per_recording, nms_iou, min_gap_s, rf_level, margin_s, "
                        "channel_dim, n_fft, hop_length, max_candidates)")
    m = tools.add_parser("maximise", help="activation maximisation of a unit, a class or an embedding direction")
    _common(m)
    m.add_argument("--layer", help="with --unit: maximise that channel of this layer")
    m.add_argument("--unit", type=int, help="channel of --layer")
    m.add_argument("--class", dest="class_index", type=int, help="maximise this output column (a logit)")
    m.add_argument("--enroll", help="maximise the cosine to this utterance's embedding (an embedding direction)")
    m.add_argument("--resample", action="store_true", help="resample --enroll to the model's rate")
    m.add_argument("--video", action="store_true",
                   help="maximise on face-crop video (frames of the model's crop_size; an audio-visual model hears "
                        "quiet seeded noise) instead of the spectrogram; needs --layer and --unit (a visual layer)")
    m.add_argument("--frames", type=int, help="--video: frames of the optimised clip (default 8)")
    m.add_argument("--seconds", type=float, help="length of the optimised input (default 2)")
    m.add_argument("--steps", type=int, help="gradient steps (default 150)")
    m.add_argument("--starts", type=int, help="random starts (default 3)")
    m.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a MaximiseConfig field: l2, tv_freq, tv_time, tv_power, temporal (slow|fast), "
                        "modulation_frames, lr, start_db, start_jitter, max_amplitude, seed, n_fft, hop_length, "
                        "griffin_lim_iters; with --video a VideoMaximiseConfig field: l2, tv_space, tv_time, "
                        "tv_power, temporal, modulation_frames, lr, start_jitter, seed")
    return ins


def _model(args):
    model = resolve_model(args.model, architecture=args.architecture, args=parse_model_args(args.model_arg))
    rate = sample_rate_of(model)
    return model, rate


def _load(path: str, rate: int | None, resample: bool) -> torch.Tensor:
    if rate is None:
        raise ValueError("the model states no sample_rate; pass --model-arg sample_rate=HZ")
    wav, _ = load_audio(path, sample_rate=rate, resample=resample, mono=True)
    return wav


def read_manifest(path: "str | Path") -> list[dict[str, str]]:
    """Rows of a manifest CSV (``path`` column required; paths relative to the CSV's folder)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--labels {path}: no such file; give a CSV with a 'path' column")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "path" not in rows[0]:
        raise ValueError(f"--labels {path}: needs a header with a 'path' column and at least one row")
    for row in rows:
        row["path"] = str((path.parent / row["path"]).resolve())
    return rows


def _utterances(args, rate):
    """(waveforms, labels, names) from --input / --labels, cut by --window and multiplied by --conditions."""
    rows = read_manifest(args.labels) if args.labels else [{"path": p, "speaker": Path(p).stem} for p in args.input]
    if args.labels and args.input:
        raise ValueError("give the utterances either with --input or in the --labels manifest, not both")
    if not rows:
        raise ValueError("embeddings needs utterances: --input FILE ... or --labels manifest.csv")
    conditions = parse_conditions(args.conditions)
    if args.window is not None and args.window <= 0:
        raise ValueError(f"--window must be a positive number of seconds, got {args.window}")
    keys = [k for k in rows[0] if k not in ("path", "start_s", "end_s")]
    if "condition" in keys and len(conditions) > 1:
        raise ValueError("the --labels manifest has a 'condition' column; drop it or give one --conditions value")
    waves, labels, names = [], {k: [] for k in keys}, []
    cache: dict[str, torch.Tensor] = {}
    for row in rows:
        wav = cache.setdefault(row["path"], _load(row["path"], rate, args.resample))
        a = int(float(row.get("start_s") or 0) * rate)
        b = int(float(row["end_s"]) * rate) if row.get("end_s") else wav.shape[-1]
        step = int(args.window * rate) if args.window else b - a
        for w0 in range(a, max(a + 1, b - step // 2 + 1), max(step, 1)):
            piece = wav[..., w0:min(b, w0 + step)]
            if piece.shape[-1] < step // 2 or piece.shape[-1] == 0:
                continue
            for cond in conditions:
                waves.append(apply_condition(piece, rate, cond, seed=args.seed + len(waves)))
                for k in keys:
                    labels[k].append(row[k])
                if len(conditions) > 1:
                    labels.setdefault("condition", []).append(cond)
                names.append(f"{Path(row['path']).stem}@{w0 / rate:.2f}s" + (f"/{cond}" if len(conditions) > 1 else ""))
    return waves, labels, names


def run_inspect_command(args: argparse.Namespace) -> int:
    out = check_output_dir(args.out)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    model, rate = _model(args)
    spec = {"model": args.model, "model_args": parse_model_args(args.model_arg)}
    if args.tool == "filters":
        write_filters(first_layer_filters(model, args.layer), out, spec)
    elif args.tool == "embeddings":
        if args.separator is None:
            waves, labels, names = _utterances(args, rate)
        else:
            waves, labels, names = _separated(args, rate)
            spec["separator"] = args.separator
        x = embed(model, waves, layer=args.layer)
        projections = [p.strip() for p in args.projections.split(",") if p.strip()]
        emap = embedding_map(x, labels, names, projections=projections, seed=args.seed)
        nn = nearest(x, args.query, args.neighbours)
        write_embedding_map(emap, out, waves, rate, args.query, meta=spec, neighbours=nn)
        for method, note in emap.notes.items():
            if method not in emap.projections:
                print(f"note: {note}")
        print("silhouette (cosine): " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a"
                                                   for k, v in emap.silhouettes.items()))
    elif args.tool == "top-segments" and args.video:
        config = build_config(TopSegmentsConfig, sets=args.set, shortcuts={"unit": args.unit, "top": args.top})
        _top_patches(args, model, rate, config, out, spec)
    elif args.tool == "top-segments":
        config = build_config(TopSegmentsConfig, sets=args.set, shortcuts={"unit": args.unit, "top": args.top})
        waves = [_load(p, rate, args.resample) for p in args.input]
        result = top_segments(model, args.layer, waves, rate, config, names=[Path(p).name for p in args.input])
        write_top_segments(result, out, spec)
    elif args.video:
        _maximise_video(args, model, rate, out, spec)
    else:
        if args.frames is not None:
            raise ValueError("--frames goes with --video (the spectrogram's length is --seconds)")
        objective = _objective(args, model, rate)
        config = build_config(MaximiseConfig, sets=args.set, shortcuts={"seconds": args.seconds, "steps": args.steps,
                                                                        "starts": args.starts})
        result = maximise(model, objective, rate, config)
        write_maximised(result, out, spec)
        print("objective per start: " + ", ".join(f"{v:.4g}" for v in result.metadata["final_score"]) +
              " (Griffin-Lim audio: " + ", ".join(f"{v:.4g}" for v in result.metadata["griffin_lim_score"]) + ")")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}/")
    return 0


def _objective(args, model, rate):
    given = [n for n, v in (("--unit", args.unit), ("--class", args.class_index), ("--enroll", args.enroll))
             if v is not None]
    if len(given) != 1:
        raise ValueError("maximise needs exactly one target: --layer NAME --unit N, --class K or --enroll FILE "
                         f"(got {', '.join(given) or 'none'})")
    if args.unit is not None:
        if args.layer is None:
            raise ValueError("--unit needs --layer NAME (the layer whose channel to maximise)")
        return unit_objective(model, args.layer, args.unit)
    if args.layer is not None:
        raise ValueError("--layer goes with --unit; --class and --enroll use the model's output / embedding")
    if args.class_index is not None:
        return class_objective(args.class_index)
    embedder = embedder_of(model)
    embedder = model if embedder is None else embedder
    with torch.no_grad():
        direction = embedder(_load(args.enroll, rate, args.resample))
    return direction_objective(model, direction[0])


def _maximise_video(args, model, rate, out, spec) -> None:
    """``maximise --video``: a unit of a visual layer, on face-crop frames of the model's ``crop_size``."""
    if args.layer is None or args.unit is None or args.class_index is not None or args.enroll is not None:
        raise ValueError("maximise --video needs --layer NAME --unit N (a channel of a visual layer), and neither "
                         "--class nor --enroll")
    crop = crop_size_of(model, required=True)
    config = build_config(VideoMaximiseConfig, sets=args.set, shortcuts={"frames": args.frames, "steps": args.steps,
                                                                         "starts": args.starts,
                                                                         "seconds": args.seconds})
    call = _quiet_sound(model, rate, config.frames, config.seed)
    result = maximise_video(model, unit_objective(model, args.layer, args.unit, call=call), crop, config)
    write_maximised_video(result, out, {**spec, "audio": None if call is None else "quiet white noise (-60 dBFS)"})
    print("objective per start: " + ", ".join(f"{v:.4g}" for v in result.metadata["final_score"]) +
          " (start: " + ", ".join(f"{v:.4g}" for v in result.metadata["start_score"]) + ")")


def _separated(args, rate):
    """``embeddings --separator``: the inputs (mixtures, at the separator's rate) separated, each source an utterance
    at the embedding model's rate; a manifest's columns are copied to each of a mixture's sources."""
    separator = resolve_model(args.separator, args=parse_model_args(args.separator_arg, flag="--separator-arg"))
    mixtures, labels, names = _utterances(args, sample_rate_of(separator, required=True))
    if rate is None:
        raise ValueError("the --model states no sample_rate; pass --model-arg sample_rate=HZ")
    waves, source_labels, source_names = separate_sources(separator, mixtures, to_rate=rate, names=names)
    per = len(waves) // len(mixtures)
    for key, values in labels.items():
        if key == "speaker" and not args.labels:
            continue  # without a manifest the 'speaker' label is only the file's name: the mixture label says it
        source_labels.setdefault(key, [values[i // per] for i in range(len(waves))])
    return waves, source_labels, source_names


def _quiet_sound(model, rate, frames: int, seed: int):
    """``call(net, video)`` giving an audio-visual model quiet seeded noise (-60 dBFS) as long as ``frames`` at its
    fps; ``None`` for a model that states no sample rate (it takes the video alone)."""
    if rate is None:
        return None
    fps = fps_of(model, required=True)
    g = torch.Generator().manual_seed(seed)
    audio = 1e-3 * torch.randn(1, 1, max(1, round(frames / fps * rate)), generator=g)

    def call(net, video):
        return net(audio.expand(video.shape[0], -1, -1).to(video.device), video)
    return call


def _top_patches(args, model, rate, config, out, spec) -> None:
    """``top-segments --video``: face-crop patches of a visual unit over the --input clips."""
    crop = crop_size_of(model, required=True)
    videos = []
    for path in args.input:
        face = FaceVideo.from_file(path, tracker=FaceTracker(crop_size=crop))
        videos.append(face.to_model_input(face.representation))
    frames = {v.shape[1] for v in videos}
    if rate is not None and len(frames) > 1:
        calls = {n: _quiet_sound(model, rate, n, 0) for n in frames}
        call = lambda net, v: calls[v.shape[1]](net, v)  # noqa: E731
    else:
        call = _quiet_sound(model, rate, videos[0].shape[1], 0)
    result = top_patches(model, args.layer, videos, config, names=[Path(p).name for p in args.input], call=call)
    write_top_patches(result, out, {**spec, "audio": None if call is None else "quiet white noise (-60 dBFS)"})
