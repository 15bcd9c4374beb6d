"""An explanation as one self-contained HTML page: what Jupyter shows for an :class:`~avxai.explanation.Explanation`
(``_repr_html_``) and what ``Explanation.to_html(path)`` writes.

The page holds the explanation's figure (a PNG), its scores, and a player for each of its media (the original,
preserved and deleted audio as WAV; video, e.g. the face stream of an audio-visual input, as MP4), all embedded
as base64 ``data:`` URIs, so that a notebook or a single ``.html`` file carries everything and needs no folder
beside it. Media are embedded in the explanation's order until ``max_media_bytes`` (counted before base64) would
be exceeded; the rest are left out and the page says which, how large, and how to get them.

The explanation is read through its attributes (``plot``, ``scores``, ``media``, ...), never imported: this
module sits beside ``explanation`` in the layers and draws nothing itself (the figure comes from
``Explanation.plot``).
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avxai.io.video import VideoClip, write_video
from avxai.safety import write_text

#: media embedded in one page at most, in bytes before base64 (about a minute of 16 kHz mono audio per player x3)
DEFAULT_MAX_MEDIA_BYTES = 10_000_000
#: figure resolution in the page (dots per inch of the matplotlib figure)
FIGURE_DPI = 100

_STYLE = ("<style>.avxai-expl{font-family:sans-serif;font-size:13px}.avxai-expl table{border-collapse:collapse}"
          ".avxai-expl td,.avxai-expl th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
          ".avxai-expl figure{display:inline-block;margin:4px 12px 4px 0}.avxai-expl figcaption{font-weight:bold}"
          ".avxai-note{color:#8a5a00}</style>")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def wav_bytes(waveform: Tensor, sample_rate: float) -> bytes:
    """A WAV file (16-bit PCM) of ``waveform``; a perturbed input above full scale is scaled down, never clipped.

    Shape: waveform ``(channels, time)``.
    """
    import soundfile as sf  # optional at import time: only pages with audio need it

    wav = waveform.detach().cpu().float()
    peak = wav.abs().max().item() if wav.numel() else 0.0
    if peak > 1.0:
        wav = wav / peak * 0.99
    buffer = io.BytesIO()
    sf.write(buffer, wav.numpy().T, int(round(sample_rate)), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mp4_bytes(frames: Tensor, fps: float) -> bytes:
    """An MP4 (h264) of ``frames`` in [0, 1].

    Shape: frames ``(frames, 3, height, width)`` (height and width even, as h264 asks).
    """
    pixels = (frames.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    with tempfile.TemporaryDirectory(prefix="avxai-html-") as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(path, VideoClip(frames=pixels, fps=float(fps)), crf=23)
        return path.read_bytes()


def figure_png(explanation: Any, index: int) -> bytes:
    """``explanation.plot(index)`` as PNG bytes; the figure is closed, so a notebook does not show it twice."""
    import matplotlib.pyplot as plt  # optional at import time: only a page with a figure draws

    fig = explanation.plot(index=index)
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _number(value: float) -> str:
    return f"{value:.4g}"


def scores_table(explanation: Any, index: int) -> str:
    """The scores of input ``index`` as an HTML table: one row per score, one column per area when the
    explanation has several (extremal: ``(batch, k)`` scores)."""
    areas = list(explanation.areas or [])
    batch = int(explanation.attribution.shape[0])
    rows = []
    for name, value in explanation.scores.items():
        row = torch.as_tensor(value).detach().cpu().double()
        per_input = row.dim() >= 1 and row.shape[0] == batch
        cells = [_number(v) for v in (row[index] if per_input else row).flatten().tolist()]
        if len(cells) > 1 and len(cells) == len(areas):
            text = ", ".join(f"{c} (area {a:g})" for c, a in zip(cells, areas))
        else:
            text = ", ".join(cells)
        if batch > 1 and not per_input:
            text += " (one value for the whole batch)"
        rows.append(f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(text)}</td></tr>")
    if not rows:
        return "<p>no scores</p>"
    return "<table>" + "".join(rows) + "</table>"


def _describe(value: Any) -> str:
    """A short text for a metadata entry (the scorer: its ``name`` or ``kind`` and its arguments)."""
    if isinstance(value, dict):
        keys = ("scorer", "name", "kind")
        head = next((str(value[k]) for k in keys if k in value), "")
        rest = ", ".join(f"{k}={v}" for k, v in value.items()
                         if k not in keys and not isinstance(v, dict) and len(str(v)) <= 40)
        return f"{head} ({rest})" if head and rest else head or rest
    return str(value)


def media_players(explanation: Any, index: int, max_media_bytes: int) -> tuple[str, list[str]]:
    """Players for the media of input ``index`` within ``max_media_bytes``, and the names of those left out
    (each with its kind and size, or why it could not be encoded)."""
    players, left_out, used = [], [], 0
    for name, (kind, data, rate) in explanation.media.items():
        if data.shape[0] <= index:  # a medium for fewer inputs than the batch: never another input's
            left_out.append(f"{name} ({kind}: none for input {index + 1})")
            continue
        item = data[index]
        if kind == "audio":
            estimate = item.numel() * 2 + 44  # 16-bit PCM and the WAV header: known before encoding
            if used + estimate > max_media_bytes:
                left_out.append(f"{name} (audio, {_megabytes(estimate)})")
                continue
            payload, mime = wav_bytes(item, rate), "audio/wav"
        elif kind == "video":
            try:
                payload, mime = mp4_bytes(item, rate), "video/mp4"
            except ValueError as err:  # e.g. an odd frame size, which h264 cannot hold: said on the page
                left_out.append(f"{name} (video: {err})")
                continue
        else:
            left_out.append(f"{name} (unknown media kind {kind!r})")
            continue
        if used + len(payload) > max_media_bytes:
            left_out.append(f"{name} ({kind}, {_megabytes(len(payload))})")
            continue
        used += len(payload)
        tag = "audio" if kind == "audio" else "video"
        players.append(f'<figure><figcaption>{html.escape(name)}</figcaption><{tag} controls '
                       f'src="{_data_uri(mime, payload)}"></{tag}></figure>')
    return "".join(players), left_out


def explanation_html(explanation: Any, index: int = 0, *, max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
                     figure: bool = True) -> str:
    """One HTML fragment for input ``index`` of ``explanation``: title, scores, figure, media players, and a
    note for what was left out (media over ``max_media_bytes``, the other inputs of a batch)."""
    batch = int(explanation.attribution.shape[0])
    if not 0 <= index < batch:
        raise ValueError(f"index {index} is outside the explanation's batch of {batch}; use 0 to {batch - 1}")
    if max_media_bytes < 0:
        raise ValueError(f"max_media_bytes must be >= 0 (0 leaves every medium out), got {max_media_bytes}")
    meta = explanation.metadata or {}
    title = f"avxai explanation: {explanation.method}"
    details = [f"grid {' x '.join(explanation.axes)} {tuple(explanation.attribution.shape[1:])}"]
    if "scorer" in meta:
        details.append(f"scorer {_describe(meta['scorer'])}")
    if batch > 1:
        details.append(f"input {index + 1} of {batch}")
    parts = [_STYLE, '<div class="avxai-expl">', f"<h3>{html.escape(title)}</h3>",
             f"<p>{html.escape('; '.join(details))}</p>", scores_table(explanation, index)]
    if figure:
        parts.append(f'<div><img alt="figure" src="{_data_uri("image/png", figure_png(explanation, index))}"></div>')
    players, left_out = media_players(explanation, index, max_media_bytes)
    parts.append(players)
    notes = []
    if left_out:
        notes.append(f"Media left out (the page embeds at most {_megabytes(max_media_bytes)}): {', '.join(left_out)}. "
                     "Write them with explanation.save(folder), or raise the limit: "
                     "explanation.to_html(path, max_media_bytes=...).")
    if batch > 1:
        notes.append(f"Only input {index + 1} of {batch} is shown: explanation.to_html(path, index=i) for another.")
    parts += [f'<p class="avxai-note">{html.escape(n)}</p>' for n in notes]
    parts.append("</div>")
    return "".join(parts)


def write_html(explanation: Any, path: "str | Path", index: int = 0, *,
               max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES) -> Path:
    """Write :func:`explanation_html` as one complete HTML file at ``path`` (parent folders created); returns it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name for the page, e.g. {path / 'explanation.html'}")
    body = explanation_html(explanation, index, max_media_bytes=max_media_bytes)
    title = html.escape(f"avxai explanation: {explanation.method}")
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
            f"<body>\n{body}\n</body>\n</html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path.parent, path, page)
    return path


__all__ = ["DEFAULT_MAX_MEDIA_BYTES", "explanation_html", "write_html", "scores_table", "media_players", "figure_png",
           "wav_bytes", "mp4_bytes"]
