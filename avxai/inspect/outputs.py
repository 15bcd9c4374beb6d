"""Writing an inspection's results to a folder, as ``avxai explain`` writes an explanation.

Every tool writes ``inspect.json`` (what was run and measured), ``arrays.npz`` (the numbers), a figure
``<tool>.png`` and, where there is sound, WAV files and an ``index.html`` with one audio player per file.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from avxai.inspect.embeddings import EmbeddingMap
from avxai.inspect.figures import (plot_embedding_map, plot_filters, plot_maximised, plot_maximised_video,
                                   plot_top_patches, plot_top_segments)
from avxai.inspect.filters import Filters
from avxai.inspect.maximise import Maximised
from avxai.inspect.maximise_video import MaximisedVideo
from avxai.inspect.top_patches import TopPatches
from avxai.inspect.top_segments import TopSegments
from avxai.io.audio import save_audio
from avxai.viz.style import save_figure

__all__ = ["write_filters", "write_embedding_map", "write_top_segments", "write_maximised", "write_maximised_video",
           "write_top_patches", "write_json"]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(_plain(data), indent=2) + "\n")
    return path


def _folder(out: "str | Path") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _player_page(out: Path, title: str, rows: Sequence[tuple[str, str | None]]) -> Path:
    """``index.html``: a title, the figure and one line per (text, wav file or None)."""
    items = []
    for text, wav in rows:
        player = f' <audio controls preload="none" src="{html.escape(wav)}"></audio>' if wav else ""
        items.append(f"<li>{html.escape(text)}{player}</li>")
    figures = "".join(f'<p><img src="{p.name}" style="max-width:100%"></p>' for p in sorted(out.glob("*.png")))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1>{figures}<ul>{''.join(items)}</ul></body></html>\n")
    path = out / "index.html"
    path.write_text(page)
    return path


def write_filters(filters: Filters, out: "str | Path", meta: dict[str, Any] | None = None) -> Path:
    out = _folder(out)
    np.savez_compressed(out / "arrays.npz", **filters.arrays())
    save_figure(plot_filters(filters), out / "filters", formats=("png",))
    write_json(out / "inspect.json", {"tool": "filters", "kind": filters.kind, **filters.metadata,
                                      "centres_hz": filters.centres_hz, **(meta or {})})
    return out


def write_embedding_map(emap: EmbeddingMap, out: "str | Path", waveforms: Sequence[Tensor], sample_rate: int,
                        query: int = 0, k: int = 5, meta: dict[str, Any] | None = None,
                        neighbours: list[tuple[int, float]] | None = None) -> Path:
    """Arrays, figure, one WAV per utterance and a page listing the query's nearest neighbours with players."""
    out = _folder(out)
    np.savez_compressed(out / "arrays.npz", **emap.arrays())
    if emap.projections:
        save_figure(plot_embedding_map(emap), out / "embeddings", formats=("png",))
    audio = _folder(out / "audio")
    files = []
    for i, wav in enumerate(waveforms):
        name = f"{i:03d}.wav"
        save_audio(audio / name, wav, sample_rate)
        files.append(f"audio/{name}")
    nn = neighbours if neighbours is not None else []
    data = {"tool": "embeddings", **emap.metadata(), "query": {"index": query, "name": emap.names[query]},
            "neighbours": [{"index": i, "name": emap.names[i], "cosine": c,
                            **{key: emap.labels[key][i] for key in emap.labels}} for i, c in nn],
            "files": files, **(meta or {})}
    write_json(out / "inspect.json", data)
    sil = ", ".join(f"{key} {v:.3f}" if v is not None else f"{key} n/a" for key, v in emap.silhouettes.items())
    labels = lambda i: ", ".join(f"{key}={emap.labels[key][i]}" for key in emap.labels)  # noqa: E731
    rows = [(f"silhouette (cosine): {sil}", None), (f"query {emap.names[query]} ({labels(query)})", files[query])]
    rows += [(f"neighbour {r + 1}: {emap.names[i]} ({labels(i)}), cosine {c:.3f}", files[i]) for r, (i, c) in
             enumerate(nn)]
    _player_page(out, "embedding map: nearest neighbours of the query", rows)
    return out



def _save_ranked(out: Path, key: str, items, fields, ranked: list[dict]) -> None:
    """``arrays.npz`` of a ranking: ``<key>_NN`` (the patch or image), ``field_NN`` (its receptive field) and
    ``activation`` (one per item, best first)."""
    arrays = {f"{key}_{i:02d}": x for i, x in enumerate(items)}
    arrays.update({f"field_{i:02d}": f for i, f in enumerate(fields)})
    arrays["activation"] = np.array([r["activation"] for r in ranked])
    np.savez_compressed(out / "arrays.npz", **arrays)

def write_top_segments(result: TopSegments, out: "str | Path", meta: dict[str, Any] | None = None) -> Path:
    out = _folder(out)
    _save_ranked(out, "patch", result.patches, result.fields, result.segments)
    rows = []
    if result.segments:
        save_figure(plot_top_segments(result), out / "top_segments", formats=("png",))
    audio = _folder(out / "audio")
    for i, (seg, wav) in enumerate(zip(result.segments, result.audio)):
        name = f"segment_{i:02d}.wav"
        save_audio(audio / name, wav, result.sample_rate)
        seg["file"] = f"audio/{name}"
        rows.append((f"{i + 1}. {seg['name']} {seg['clip_s'][0]:.2f}-{seg['clip_s'][1]:.2f} s, activation "
                     f"{seg['activation']:.4g}, field {seg['freq_hz'][0]:.0f}-{seg['freq_hz'][1]:.0f} Hz",
                     seg["file"]))
    write_json(out / "inspect.json", {"tool": "top-segments", **result.metadata, **(meta or {})})
    _player_page(out, f"top segments of {result.metadata.get('layer')} unit {result.metadata.get('unit')}", rows)
    return out


def write_maximised(result: Maximised, out: "str | Path", meta: dict[str, Any] | None = None) -> Path:
    out = _folder(out)
    np.savez_compressed(out / "arrays.npz", log_magnitude=result.log_magnitude, history=result.history,
                        freqs_hz=result.freqs_hz, times_s=result.times_s, mean_spectrum_db=result.mean_spectrum_db())
    save_figure(plot_maximised(result), out / "maximise", formats=("png",))
    rows = []
    for i in range(result.audio.shape[0]):
        name = f"start_{i}.wav"
        save_audio(out / name, result.audio[i:i + 1], result.sample_rate)
        rows.append((f"start {i}: objective {result.metadata['final_score'][i]:.4g} on the optimised input, "
                     f"{result.metadata['griffin_lim_score'][i]:.4g} on this Griffin-Lim audio", name))
    write_json(out / "inspect.json", {"tool": "maximise", **result.metadata, **(meta or {})})
    _player_page(out, "activation maximisation", rows)
    return out


def write_maximised_video(result: MaximisedVideo, out: "str | Path", meta: dict[str, Any] | None = None) -> Path:
    out = _folder(out)
    np.savez_compressed(out / "arrays.npz", video=result.video, history=result.history)
    save_figure(plot_maximised_video(result), out / "maximise_video", formats=("png",))
    write_json(out / "inspect.json", {"tool": "maximise", "input": "face-crop video", **result.metadata,
                                      **(meta or {})})
    return out


def write_top_patches(result: TopPatches, out: "str | Path", meta: dict[str, Any] | None = None) -> Path:
    out = _folder(out)
    _save_ranked(out, "image", result.images, result.fields, result.patches)
    if result.patches:
        save_figure(plot_top_patches(result), out / "top_patches", formats=("png",))
    write_json(out / "inspect.json", {"tool": "top-segments", "input": "face clips", **result.metadata,
                                      **(meta or {})})
    return out
