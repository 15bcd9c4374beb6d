"""Extremal perturbation on real pretrained models and real recordings: where do the masks go?

    python scripts/extremal_real_models.py --input aba --model resemblyzer [--set variant=dual ...] [--out runs.jsonl]
    python scripts/extremal_real_models.py --input noisy --model vad --method occlusion

Inputs (``avxai.data.real_speech``): ``aba`` / ``bab`` (two real talkers, target = the talker with two turns, score
= Resemblyzer's cosine to the target's separate enrollment), ``aba1`` / ``bab1`` (the same with the target's turns
cut to 1 s: a uniform map's share about 0.45), ``noisy`` (talker A in 0.5 s pieces with 0.5 s gaps, white noise
at 5 dB SNR; Resemblyzer: cosine to A's enrollment; ``vad``: Silero VAD's mean speech probability over the frames it
detects). ``--input toy-aba --model speakernet`` is avxai's own toy for comparison: the bundled speaker model on
the generated A-B-A of ``avxai demo`` (log-probability of A; not a real model). Prints and appends one JSON line per run: the share of each mask's mass in the target's segments, the
uniform share, preserved / deleted / unmasked scores, the warnings, seconds. One torch thread.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import time
import warnings

import torch

from avxai.config import build_config
from avxai.data.real_speech import speech_with_gaps_and_noise, turns_utterance
from avxai.methods import get_method
from avxai.metrics.localisation import frames_in_segments, mass_in_segments

INPUTS = ("aba", "bab", "aba1", "bab1", "noisy", "toy-aba")
MODELS = ("resemblyzer", "vad", "speakernet")


def utterance(name: str):
    if name == "noisy":
        return speech_with_gaps_and_noise(snr_db=5.0, seed=0)
    return turns_utterance(name[:3].upper(), target_turn_s=1.0 if name.endswith("1") else None)


def problem(model: str, u, perturbation: str | None = None):
    import avxai
    from avxai.tasks import frames, speaker

    if model == "resemblyzer":
        m = avxai.models.load_model("resemblyzer")
        return speaker.build(m, speaker.SpeakerOptions(input=u.waveform, sample_rate=u.sample_rate,
                                                       enroll=u.enroll[u.speaker], segments=u.segment_list(),
                                                       n_fft=512, hop_length=128, perturbation=perturbation))
    path = str(importlib.resources.files("silero_vad").joinpath("data/silero_vad.jit"))
    m = avxai.resolve_model(path, args={"sr": 16000, "chunk": 512})
    torch.set_num_threads(1)  # importing silero_vad sets it too
    return frames.build(m, frames.FramesOptions(input=u.waveform, sample_rate=u.sample_rate,
                                                segments=u.segment_list(), n_fft=512, hop_length=128,
                                                perturbation=perturbation))


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text in ("None", "none"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t)
    return text


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", choices=INPUTS, required=True)
    parser.add_argument("--model", choices=MODELS, default="resemblyzer")
    parser.add_argument("--method", default="extremal")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config field")
    parser.add_argument("--tag", default="")
    parser.add_argument("--perturbation", default=None, help="the modality's perturbation (the task's option; "
                        "gradient methods' baseline), e.g. floor; default zero")
    parser.add_argument("--out", default=None, help="append the JSON line to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if (args.input == "toy-aba") != (args.model == "speakernet"):
        parser.error("--input toy-aba goes with --model speakernet (avxai's toy), and only with it")
    if args.model == "speakernet":
        from avxai.demo import _speakernet_problem

        p, _ = _speakernet_problem()
        u = argparse.Namespace(target="A", segment_list=lambda: p.metadata["segments"])
    else:
        u = utterance(args.input)
        p = problem(args.model, u, args.perturbation)
    method = get_method(args.method)
    values = dict(kv.split("=", 1) for kv in args.set)
    values = {k: parse_value(v) for k, v in values.items()}
    if args.method == "extremal":
        values.setdefault("areas", (0.1, 0.2, 0.3))
        if isinstance(values["areas"], float):
            values["areas"] = (values["areas"],)
    if args.method == "occlusion":
        values.setdefault("window", (257, 12))
        values.setdefault("stride", (257, 6))
        values.setdefault("batch_size", 16)
    config = build_config(method.config_class, values=values)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            expl = method(p.model, p.modality, p.scorer, config)
        except ValueError as err:
            row = {"input": args.input, "model": args.model, "method": args.method, "tag": args.tag,
                   "set": args.set, "perturbation": args.perturbation, "error": str(err)}
            print(json.dumps(row))
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            return row
    seconds = time.perf_counter() - start
    times = expl.coordinates["time"]
    segs = u.segment_list()
    uniform = float(frames_in_segments(times, segs, u.target).double().mean())
    row = {"input": args.input, "model": args.model, "method": args.method, "tag": args.tag, "set": args.set,
           "uniform": round(uniform, 3), "unmasked": round(float(expl.scores["unmasked"][0]), 4),
           "seconds": round(seconds, 1)}
    if getattr(expl, "masks", None) is not None and expl.masks is not None:
        share = mass_in_segments(expl.masks, times, segs, u.target, grid_dims=2)[0]
        row.update(areas=list(expl.areas), share=[round(float(s), 3) for s in share],
                   preserved=[round(float(s), 4) for s in expl.scores["preserved"][0]],
                   deleted=[round(float(s), 4) for s in expl.scores["deleted"][0]],
                   final_area=[round(float(m.mean()), 3) for m in expl.masks[0]])
    pos = expl.attribution.clamp_min(0)
    row["positive_share"] = round(float(mass_in_segments(pos, times, segs, u.target, grid_dims=2)[0]), 3)
    row["warnings"] = list(expl.metadata.get("warnings", []))
    row["other_warnings"] = sorted({str(w.message)[:160] for w in caught if w.category.__name__ != "ExplanationWarning"})
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    main()
