"""What the model learned, on the bundled speaker model (SpeakerNet, generated speech) and on a real pretrained
one (Resemblyzer's GE2E encoder, real speech from codec2-examples): filters, embedding maps, top segments and
activation maximisation. Writes each tool's full output (arrays, audio, index.html) under ``--out`` and the paper
figures (``inspect_*.png``, print style: 3.4 / 7.0 in wide, fonts >= 7 pt) under ``--figures``.

    python recipes/inspect/make_figures.py --out avxai-out/inspect --figures docs/figures --dpi 110
    python recipes/inspect/make_figures.py --debug --out /tmp/inspect --figures /tmp/inspect/figures

Needs ``pip install avxai[resemblyzer]`` for the real model (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from avxai.data.speech_mixtures import two_speaker_mixture
from avxai.data.synthetic import SyntheticSpeaker
from avxai.inspect import (MaximiseConfig, TopSegmentsConfig, apply_condition, embed, embedding_map,
                           first_layer_filters, maximise, nearest, top_segments)
from avxai.faces import FaceTracker
from avxai.inspect.figures import (plot_embedding_map, plot_filters, plot_maximised, plot_maximised_video,
                                   plot_top_patches, plot_top_segments)
from avxai.inspect.embeddings import silhouette
from avxai.inspect.maximise import class_objective, direction_objective, unit_objective
from avxai.inspect.maximise_video import VideoMaximiseConfig, maximise_video
from avxai.inspect.outputs import (write_embedding_map, write_filters, write_maximised, write_maximised_video,
                                   write_top_patches, write_top_segments)
from avxai.inspect.probe import capture, default_channel_dim, unit_map
from avxai.inspect.sources import separate_sources
from avxai.inspect.top_patches import top_patches
from avxai.io.audio import load_audio, resample
from avxai.models.contract import embedder_of
from avxai.models.spec import resolve_model
from avxai.modalities.video import FaceVideo
from avxai.models.state import ASSETS_DIR
from avxai.viz.style import COLUMN_WIDTH, PAGE_WIDTH, paper_style, plt

REAL = ASSETS_DIR / "real"
RATE = 16000
CONDITIONS = ("clean", "telephone", "noise:5")
#: rc overrides of the figures (--dpi)
STYLE: dict = {"savefig.dpi": 300}


def figure(fig, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=STYLE["savefig.dpi"])
    plt.close(fig)
    print(f"  figure {folder / name}.png")


def real_utterances(window: float) -> tuple[list[torch.Tensor], dict[str, list[str]], list[str]]:
    """The bundled real recordings cut at their turns (aba: its segments JSON; enroll_*: one talker each) into
    windows of ``window`` s, each under every condition."""
    # bab.wav reuses aba.wav's sentences (the same cuts in another order): left out so no utterance is counted twice
    turns = json.loads((REAL / "aba_segments.json").read_text())["segments"]
    pieces = [("aba", t["start_s"], t["end_s"], t["label"]) for t in turns]
    pieces += [("enroll_A", 0.0, None, "A"), ("enroll_B", 0.0, None, "B")]
    waves, labels, names = [], {"speaker": [], "condition": []}, []
    for stem, start, end, speaker in pieces:
        wav, _ = load_audio(REAL / f"{stem}.wav", sample_rate=RATE)
        a, b = int(start * RATE), wav.shape[-1] if end is None else int(end * RATE)
        step = int(window * RATE)
        for w0 in range(a, b - step + 1, step):
            for cond in CONDITIONS:
                waves.append(apply_condition(wav[..., w0:w0 + step], RATE, cond, seed=len(waves)))
                labels["speaker"].append(speaker)
                labels["condition"].append(cond)
                names.append(f"{stem}@{w0 / RATE:.1f}s/{cond}")
    return waves, labels, names


def synthetic_utterances(speakers: int, per_speaker: int, seconds: float):
    """Generated speech of the bundled SpeakerNet's training speakers (ids 0.., seed 0; fresh utterance seeds)."""
    waves, labels, names = [], {"speaker": [], "condition": []}, []
    for sid in range(speakers):
        spk = SyntheticSpeaker(sid, seed=0)
        for u in range(per_speaker):
            wav = spk.utterance(seconds, sample_rate=RATE, seed=900_000 + 97 * sid + u).view(1, 1, -1)
            for cond in CONDITIONS:
                waves.append(apply_condition(wav, RATE, cond, seed=len(waves)))
                labels["speaker"].append(f"spk{sid}")
                labels["condition"].append(cond)
                names.append(f"spk{sid}/u{u}/{cond}")
    return waves, labels, names


def selective_unit(model, layer: str, waves: list[torch.Tensor]) -> int:
    """The channel whose peak activation over ``waves`` stands highest above its median, in standard deviations."""
    cdim = default_channel_dim(model, layer)
    with torch.no_grad(), capture(model, layer) as cap:
        acts = []
        for w in waves:
            cap.outputs.clear()
            model(w)
            a = cap.output.movedim(cdim, -1)
            acts.append(a.reshape(-1, a.shape[-1]))
    a = torch.cat(acts)
    score = (a.max(dim=0).values - a.median(dim=0).values) / a.std(dim=0).clamp_min(1e-8)
    return int(score.argmax())


def separated_map(sep, spk, out: Path, figs: Path, pairs: list[tuple[int, int]]) -> dict:
    """The bundled separator's sources of generated two-speaker mixtures (8 kHz), embedded by SpeakerNet (16 kHz);
    each source labelled by its output slot and by the speaker whose clean signal it correlates with most."""
    speakers = {i: SyntheticSpeaker(i, seed=0) for pair in pairs for i in pair}
    mixtures, truth = [], []
    for k, (a, b) in enumerate(pairs):
        m = two_speaker_mixture(speakers[a], speakers[b], 1.5, sep.sample_rate, seed=k)
        mixtures.append(m.mixture.view(1, 1, -1))
        truth.append(((a, b), m.sources))
    names = [f"mix{k}:spk{a}+spk{b}" for k, (a, b) in enumerate(pairs)]
    own, labels, source_names = separate_sources(sep, mixtures, names=names)  # at the separator's rate
    per = len(own) // len(mixtures)
    labels["speaker"] = []
    for i, est in enumerate(own):
        (a, b), refs = truth[i // per]
        corr = [float(torch.nn.functional.cosine_similarity(est.reshape(1, -1), r.reshape(1, -1))) for r in refs]
        labels["speaker"].append(f"spk{(a, b)[int(np.argmax(corr))]}")
    # the clean signals too, through the same 8 kHz band: a baseline that tells the separator's errors apart from
    # the band limit (SpeakerNet was trained on 16 kHz speech)
    refs = [r[k:k + 1].view(1, 1, -1) for (_, r) in truth for k in range(per)]
    ref_speakers = [f"spk{ab[k]}" for (ab, _) in truth for k in range(per)]
    waves = [resample(w, sep.sample_rate, RATE) for w in own + refs]
    x = embed(spk, waves)
    kinds = ["separated"] * len(own) + ["clean reference"] * len(refs)
    emap = embedding_map(x, {"speaker": labels["speaker"] + ref_speakers, "kind": kinds},
                         source_names + [f"{n}/clean {k}" for n in names for k in range(per)],
                         projections=("pca", "tsne"))
    sep_only = [i for i, k in enumerate(kinds) if k == "separated"]
    ref_only = [i for i, k in enumerate(kinds) if k != "separated"]
    write_embedding_map(emap, out / "separator_sources_embeddings", waves, RATE, 0,
                        meta={"model": "speakernet", "separator": "separator"}, neighbours=nearest(x, 0, 5))
    with paper_style(**STYLE):
        figure(plot_embedding_map(emap, width=PAGE_WIDTH), figs, "inspect_embeddings_separated")
    return {"sources": len(own), "silhouette": emap.silhouettes,
            "silhouette_by_speaker_separated": silhouette(x[sep_only], [emap.labels["speaker"][i] for i in sep_only]),
            "silhouette_by_slot_separated": silhouette(x[sep_only], labels["source"]),
            "silhouette_by_speaker_clean": silhouette(x[ref_only], [emap.labels["speaker"][i] for i in ref_only])}


def run_model(tag: str, model, layer: str, emb_data, seg_waves, seg_names, objective, out: Path, figs: Path,
              config: MaximiseConfig, top: int) -> dict:
    """The four tools on one model; returns the numbers for the summary."""
    summary: dict = {}
    t = time.time()
    filters = first_layer_filters(model)
    write_filters(filters, out / f"{tag}_filters", {"model": tag})
    with paper_style(**STYLE):
        figure(plot_filters(filters, width=PAGE_WIDTH), figs, f"inspect_filters_{tag}")
    waves, labels, names = emb_data
    x = embed(model, waves)
    emap = embedding_map(x, labels, names, projections=("pca", "tsne", "umap"))
    nn = nearest(x, 0, 5)
    write_embedding_map(emap, out / f"{tag}_embeddings", waves, RATE, 0, meta={"model": tag}, neighbours=nn)
    with paper_style(**STYLE):
        figure(plot_embedding_map(emap, width=PAGE_WIDTH), figs, f"inspect_embeddings_{tag}")
    summary["silhouette"] = emap.silhouettes
    cond, spk = np.array(labels["condition"]), np.array(labels["speaker"])
    summary["silhouette_vs_clean"] = {  # each condition against clean alone: by condition and by speaker
        c: {by: silhouette(x[np.isin(cond, ("clean", c))], list(lab[np.isin(cond, ("clean", c))]))
            for by, lab in (("condition", cond), ("speaker", spk))} for c in CONDITIONS if c != "clean"}
    summary["utterances"] = len(waves)
    summary["umap"] = emap.notes["umap"]
    unit = selective_unit(model, layer, seg_waves)
    result = top_segments(model, layer, seg_waves, RATE, TopSegmentsConfig(unit=unit, top=top), names=seg_names)
    write_top_segments(result, out / f"{tag}_top_segments", {"model": tag, "unit_rule": "most selective channel"})
    with paper_style(**STYLE):
        figure(plot_top_segments(result, width=PAGE_WIDTH), figs, f"inspect_top_segments_{tag}")
    summary["top_segments"] = {"layer": layer, "unit": unit, "segments": [
        {k: s[k] for k in ("name", "activation", "time_s", "freq_hz")} for s in result.segments]}
    res = maximise(model, objective, RATE, config)
    write_maximised(res, out / f"{tag}_maximise", {"model": tag})
    with paper_style(**STYLE):
        figure(plot_maximised(res, width=PAGE_WIDTH), figs, f"inspect_maximise_{tag}")
    summary["maximise"] = {k: res.metadata[k] for k in ("objective", "start_score", "final_score",
                                                         "griffin_lim_score")}
    summary["seconds"] = round(time.time() - t, 1)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="avxai-out/inspect")
    p.add_argument("--figures", default="docs/figures")
    p.add_argument("--debug", action="store_true", help="fewer utterances and steps (a smoke run)")
    p.add_argument("--dpi", type=int, default=300, help="PNG resolution (docs/figures uses 110 to stay small)")
    args = p.parse_args(argv)
    STYLE["savefig.dpi"] = args.dpi
    torch.manual_seed(0)
    out, figs = Path(args.out), Path(args.figures)
    out.mkdir(parents=True, exist_ok=True)
    steps, starts = (8, 2) if args.debug else (120, 3)
    summary: dict = {}

    av = resolve_model("av-enhancer")  # the visual subnet's first layer: RGB kernels as images
    print("av-enhancer (bundled): visual and audio first layers")
    for part, layer in (("visual", "visual.trunk.0.0"), ("av_audio", "audio.front.0")):
        filters = first_layer_filters(av, layer)
        write_filters(filters, out / f"av_enhancer_filters_{part}", {"model": "av-enhancer"})
        with paper_style(**STYLE):
            figure(plot_filters(filters, width=COLUMN_WIDTH if part == "av_audio" else PAGE_WIDTH), figs,
                   f"inspect_filters_{part}")

    # the visual subnet's unit 3 of visual.trunk.2 on face crops; the spatial TV raised from the default 0.1 to 30
    # (with 0.1 the result is a saturated pixel texture: the unit grows 30-fold and outweighs the regulariser)
    video_config = VideoMaximiseConfig(frames=8, steps=8 if args.debug else 60, starts=2, tv_space=30.0)
    g = torch.Generator().manual_seed(0)
    quiet = 1e-3 * torch.randn(1, 1, round(video_config.frames / av.fps * av.sample_rate), generator=g)
    objective = unit_objective(av, "visual.trunk.2", 3, call=lambda net, v: net(quiet.expand(v.shape[0], -1, -1), v))
    result = maximise_video(av, objective, av.crop_size, video_config)
    write_maximised_video(result, out / "av_enhancer_maximise_video", {"model": "av-enhancer"})
    with paper_style(**STYLE):
        figure(plot_maximised_video(result, width=PAGE_WIDTH), figs, "inspect_maximise_video_av")
    summary["av_enhancer_video"] = {k: result.metadata[k] for k in ("objective", "start_score", "final_score")}

    # the same unit's top face-crop patches in the bundled talking-face clip (faces tracked by MTCNN)
    face = FaceVideo.from_file(ASSETS_DIR / "av_enhancement" / "example.mp4",
                               tracker=FaceTracker(crop_size=av.crop_size))
    clip = face.to_model_input(face.representation)
    quiet_clip = 1e-3 * torch.randn(1, 1, round(clip.shape[1] / av.fps * av.sample_rate), generator=g)
    patches = top_patches(av, "visual.trunk.2", [clip], TopSegmentsConfig(unit=3, top=6, per_recording=6),
                          names=["example.mp4"], call=lambda net, v: net(quiet_clip, v))
    write_top_patches(patches, out / "av_enhancer_top_patches", {"model": "av-enhancer"})
    with paper_style(**STYLE):
        figure(plot_top_patches(patches, width=PAGE_WIDTH), figs, "inspect_top_patches_av")
    mouth = json.loads((ASSETS_DIR / "av_enhancement" / "mouth_boxes.json").read_text())["mouth_boxes"]
    mouth = face.region_in_crop(torch.tensor(mouth))  # (frames, S, S): the generator's mouth boxes in crop pixels
    summary["av_enhancer_top_patches"] = {"mouth_share_of_crop": float(mouth.mean()), "patches": [
        {**{k: p[k] for k in ("peak_frame", "activation", "rows", "cols")},
         "mouth_share_of_box": float(mouth[p["peak_frame"], p["rows"][0]:p["rows"][1] + 1,
                                           p["cols"][0]:p["cols"][1] + 1].mean())} for p in patches.patches]}

    sep = resolve_model("separator")  # a waveform front end (Conv-TasNet's encoder): responses in Hz and dB
    print("separator (bundled): encoder filters")
    filters = first_layer_filters(sep)
    write_filters(filters, out / "separator_filters", {"model": "separator"})
    with paper_style(**STYLE):
        figure(plot_filters(filters, width=PAGE_WIDTH), figs, "inspect_filters_separator")

    spk = resolve_model("speakernet")
    print("separated sources: the bundled separator's outputs embedded by the bundled SpeakerNet")
    pairs = [(0, 1), (2, 3), (0, 2), (1, 3)] if args.debug else [(0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2),
                                                                 (4, 5), (4, 0), (5, 2)]
    summary["separated_sources"] = separated_map(sep, spk, out, figs, pairs)
    print("speakernet (bundled, generated speech)")
    emb = synthetic_utterances(3 if args.debug else 6, 2 if args.debug else 4, 1.0)
    seg_waves = [load_audio(ASSETS_DIR / "speaker" / f, sample_rate=RATE)[0] for f in ("aba.wav", "enroll_A.wav")]
    seg_names = ["aba.wav", "enroll_A.wav"]
    for sid in range(2 if args.debug else 6):  # and one fresh utterance of each of a few training speakers
        utterance = SyntheticSpeaker(sid, seed=0).utterance(1.5, sample_rate=RATE, seed=800_000 + sid)
        seg_waves.append(utterance.view(1, 1, -1))
        seg_names.append(f"spk{sid}")
    summary["speakernet"] = run_model(
        "speakernet", spk, "tdnn.2", emb, seg_waves, seg_names, class_objective(0), out, figs,
        MaximiseConfig(seconds=1.0, steps=steps, starts=starts), 4 if args.debug else 8)

    try:
        res = resolve_model("resemblyzer")
    except ImportError as err:
        print(f"resemblyzer skipped: {err}")
    else:
        print("resemblyzer (real weights, real speech)")
        emb = real_utterances(2.0 if args.debug else 1.2)
        files = ["aba.wav"] if args.debug else ["aba.wav", "enroll_A.wav", "enroll_B.wav"]
        seg_waves = [load_audio(REAL / f, sample_rate=RATE)[0] for f in files]
        enroll, _ = load_audio(REAL / "enroll_A.wav", sample_rate=RATE)
        with torch.no_grad():
            direction = (embedder_of(res) or res)(enroll)[0]
        summary["resemblyzer"] = run_model(
            "resemblyzer", res, "lstm", emb, seg_waves, files, direction_objective(res, direction), out, figs,
            MaximiseConfig(seconds=1.6, steps=steps, starts=starts), 4 if args.debug else 8)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    for tag, s in summary.items():
        if not isinstance(s, dict) or "maximise" not in s:
            print(f"{tag}: {s}")
            continue
        sil = ", ".join(f"{k} {v:.3f}" for k, v in s["silhouette"].items() if v is not None)
        vs = "; ".join(f"clean+{c}: by condition {v['condition']:.3f}, by speaker {v['speaker']:.3f}"
                       for c, v in s["silhouette_vs_clean"].items())
        print(f"{tag}: silhouette {sil} ({vs}); maximise {s['maximise']['start_score']} -> "
              f"{s['maximise']['final_score']} "
              f"(Griffin-Lim {s['maximise']['griffin_lim_score']}); {s['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
