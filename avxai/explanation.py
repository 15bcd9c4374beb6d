"""The explanation: attribution or masks, scores and their history, metadata; saves and plots itself.

:func:`split_explanation` cuts an explanation of a composite input into one explanation per part.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avxai.io.video import VideoClip, write_video
from avxai.notebook import DEFAULT_MAX_MEDIA_BYTES, explanation_html, write_html
from avxai.safety import check_no_symlinks, write_text
from avxai.version import __version__

FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    """Versions of the software that produced an explanation."""
    return {"avxai": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def runtime_info(device: "torch.device | str | None" = None) -> dict[str, Any]:
    """Where and how an explanation was computed: torch's intra- and inter-op threads (results can differ
    between thread counts, bitwise), the device, deterministic-algorithm mode and the software versions."""
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "device": str(device) if device is not None else "cpu",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(), "versions": versions()}


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tensors, numpy values, tuples -> plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


@dataclass
class Explanation:
    """What a method found, for a batch of ``batch`` inputs.

    Attributes
    ----------
    method : name of the method (``"occlusion"``, ``"extremal"``, ...).
    attribution : ``(batch, *grid)`` evidence per grid cell, in the scorer's units (occlusion: score drop)
        or mask units (extremal: mean mask over areas).
    grid : ``(batch, *grid)`` the values explained (e.g. STFT magnitude), for display.
    axes : names of the grid axes, e.g. ``("freq", "time")``.
    coordinates : axis name -> coordinate of each cell (units in ``units``: s, Hz).
    masks : ``(batch, k, *grid)`` masks in [0, 1] (1 = keep) for mask methods, one per area; else ``None``.
    areas : the ``k`` areas of ``masks`` (fractions of the grid).
    scores : name -> ``(batch,)`` or ``(batch, k)`` scores, e.g. ``"unmasked"``, ``"preserved"``, ``"deleted"``.
    history : name -> ``(iterations, batch, k)`` per-iteration values (``"score"``, ``"area"``) for optimisers.
    media : name -> ``("audio", waveform (batch, channels, time), sample_rate)`` or
        ``("video", frames (batch, frames, 3, height, width) in [0, 1], fps)``.
    metadata : JSON-serialisable: config, modality, scorer, segments, versions, timing.
    arrays : name -> extra ``(batch, ...)`` tensors a method produces beside the attribution (e.g. the
        PCA-RGB images of ``pca-rgb``); saved in ``arrays.npz`` as ``arrays/<name>`` and loaded back.
    """

    method: str
    attribution: Tensor
    grid: Tensor
    axes: tuple[str, ...]
    coordinates: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    masks: Tensor | None = None
    areas: list[float] | None = None
    scores: dict[str, Tensor] = field(default_factory=dict)
    history: dict[str, Tensor] = field(default_factory=dict)
    media: dict[str, tuple] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.attribution.shape[0]

    def plot(self, index: int = 0, **kwargs):
        """A matplotlib figure of input ``index`` (layout chosen by the grid's axes and the method)."""
        from avxai.viz import plot_explanation

        return plot_explanation(self, index=index, **kwargs)

    # -- notebook display -----------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """What Jupyter shows: the figure, the scores and players for the media of input 0
        (:func:`avxai.notebook.explanation_html`; media over the default size limit are left out with a note)."""
        return explanation_html(self)

    def to_html(self, path: "str | Path", *, index: int = 0,
                max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES) -> Path:
        """Write the notebook display of input ``index`` as one self-contained HTML file (figure, scores and
        media embedded; media beyond ``max_media_bytes`` left out with a note). Returns the path."""
        return write_html(self, path, index, max_media_bytes=max_media_bytes)

    # -- saving ---------------------------------------------------------------------------------
    def save(self, directory: "str | Path", *, figure: bool = True, media: bool = True) -> Path:
        """Write ``explanation.json``, ``arrays.npz``, ``figure.png`` (and ``figure_<i>.png`` for a batch),
        and media (``<name>.wav`` / ``<name>.mp4``, suffixed ``_<i>`` for a batch). Returns the directory."""
        out = Path(directory)
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory; give a folder to save the explanation in")
        out.mkdir(parents=True, exist_ok=True)
        self._refuse_symlinks(out)
        arrays = {"attribution": self.attribution, "grid": self.grid}
        if self.masks is not None:
            arrays["masks"] = self.masks
        arrays.update({f"scores/{k}": v for k, v in self.scores.items()})
        arrays.update({f"history/{k}": v for k, v in self.history.items()})
        arrays.update({f"arrays/{k}": v for k, v in self.arrays.items()})
        arrays.update({f"coordinates/{k}": torch.as_tensor(np.asarray(v)) for k, v in self.coordinates.items()})
        np.savez_compressed(out / "arrays.npz", **{k: _numpy(v) for k, v in arrays.items()})
        files = {"arrays": "arrays.npz"}
        if media:
            files["media"] = self._save_media(out)
        if figure:
            files["figures"] = self._save_figures(out)
        doc = {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "axes": list(self.axes),
            "units": self.units,
            "areas": self.areas,
            "batch_size": self.batch_size,
            "scores": to_jsonable(self.scores),
            # where it ran: the caller's record (avxai explain writes it right after computing), else now's
            "metadata": to_jsonable({"runtime": runtime_info(self.attribution.device), **self.metadata}),
            "files": files,
        }
        write_text(out, out / "explanation.json", json.dumps(doc, indent=2))
        return out

    def _refuse_symlinks(self, out: Path) -> None:
        """Refuse to save into ``out`` when a file this explanation writes is a symlink there (avxai creates
        none: one found there was planted, and writing through it would write where it points)."""
        names = ["explanation.json", "arrays.npz", "figure.png"] + [f"figure_{i}.png" for i in range(self.batch_size)]
        for name, (kind, data, _) in self.media.items():
            ext = ".wav" if kind == "audio" else ".mp4"
            names += [f"{name}{ext}"] + [f"{name}_{i}{ext}" for i in range(data.shape[0])]
        check_no_symlinks(out, names)

    def _save_media(self, out: Path) -> dict[str, list[str]]:
        import soundfile as sf

        written: dict[str, list[str]] = {}
        for name, item in self.media.items():
            kind, data, rate = item
            paths = []
            for i in range(data.shape[0]):
                suffix = "" if data.shape[0] == 1 else f"_{i}"
                if kind == "audio":
                    path = out / f"{name}{suffix}.wav"
                    wav = data[i].detach().cpu().float()
                    peak = wav.abs().max().item()
                    if peak > 1.0:  # a perturbed input can exceed full scale: scale, never clip
                        wav = wav * (0.99 / peak)
                    sf.write(str(path), wav.numpy().T, int(rate), subtype="FLOAT")
                elif kind == "video":
                    path = out / f"{name}{suffix}.mp4"
                    write_video(path, VideoClip(frames=_video_bytes(data[i]), fps=float(rate)))
                else:
                    raise ValueError(f"unknown media kind {kind!r} for {name!r}; use 'audio' or 'video'")
                paths.append(path.name)
            written[name] = paths
        return written

    def _save_figures(self, out: Path) -> list[str]:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        names = []
        for i in range(self.batch_size):
            name = "figure.png" if self.batch_size == 1 else f"figure_{i}.png"
            fig = self.plot(index=i)
            fig.savefig(out / name, dpi=120, bbox_inches="tight")
            plt.close(fig)
            names.append(name)
        return names

    @classmethod
    def load(cls, directory: "str | Path") -> "Explanation":
        """Read an explanation written by :meth:`save` (arrays and metadata; audio media re-read from WAV)."""
        src = Path(directory)
        doc_path = src / "explanation.json"
        if not doc_path.exists():
            raise ValueError(f"{src} holds no saved explanation (no explanation.json); pass the folder given to save()")
        doc = json.loads(doc_path.read_text())
        with np.load(src / doc["files"]["arrays"]) as npz:
            arrays = {k: torch.from_numpy(npz[k]) for k in npz.files}
        media: dict[str, tuple] = {}
        for name, paths in doc["files"].get("media", {}).items():
            if paths and paths[0].endswith(".wav"):
                import soundfile as sf

                waves, rate = [], None
                for p in paths:
                    data, rate = sf.read(str(src / p), dtype="float32", always_2d=True)
                    waves.append(torch.from_numpy(data.T.copy()))
                media[name] = ("audio", torch.stack(waves), rate)
        return cls(
            method=doc["method"],
            attribution=arrays["attribution"],
            grid=arrays["grid"],
            axes=tuple(doc["axes"]),
            coordinates={k.split("/", 1)[1]: v.numpy() for k, v in arrays.items() if k.startswith("coordinates/")},
            units=doc.get("units", {}),
            masks=arrays.get("masks"),
            areas=doc.get("areas"),
            scores={k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("scores/")},
            history={k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("history/")},
            media=media,
            metadata=doc.get("metadata", {}),
            arrays={k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("arrays/")},
        )



def split_explanation(explanation: Explanation) -> dict[str, Explanation]:
    """Cut an explanation of a composite input (:class:`avxai.modalities.composite.CompositeModality`, e.g.
    audio-visual) into one explanation per part, ``{"audio": ..., "video": ...}``, over each part's grid
    (attribution, grid, masks, coordinates, units, the part's media and arrays, e.g. ``rgb_video``; scores
    shared). Reads the saved metadata alone, so it also works on a loaded explanation.

    Shape: attribution ``(batch, N)`` -> ``(batch, *part_grid)`` per part; masks ``(batch, k, N)`` ->
    ``(batch, k, *part_grid)``.
    """
    meta = explanation.metadata.get("modality", {})
    if "part_names" not in meta:
        raise ValueError(f"split_explanation needs an explanation of a composite (e.g. audio-visual) input, got "
                         f"modality kind {meta.get('kind')!r}")
    sizes = meta["part_sizes"]
    out = {}
    start = 0
    for name, size in zip(meta["part_names"], sizes):
        pmeta = meta["parts"][name]
        shape = tuple(pmeta["grid_shape"])
        sl = slice(start, start + size)
        start += size

        def cut(t: Tensor | None, lead: int) -> Tensor | None:
            if t is None:
                return None
            return t[..., sl].reshape(*t.shape[:lead], *shape)

        prefix = f"{name}/"
        media = {k[: -len(name) - 1]: v for k, v in explanation.media.items() if k.endswith(f"_{name}")}
        media.update({k: v for k, v in explanation.media.items() if v[0] == name})  # single-kind media
        metadata = copy.deepcopy(explanation.metadata)
        metadata["modality"] = pmeta
        metadata["part"] = name
        out[name] = Explanation(
            method=explanation.method,
            attribution=cut(explanation.attribution, 1),
            grid=cut(explanation.grid, 1),
            axes=tuple(pmeta["axes"]),
            coordinates={k[len(prefix):]: v for k, v in explanation.coordinates.items() if k.startswith(prefix)},
            units={k[len(prefix):]: v for k, v in explanation.units.items() if k.startswith(prefix)},
            masks=cut(explanation.masks, 2),
            areas=explanation.areas,
            scores=dict(explanation.scores),
            history=dict(explanation.history),
            media=media,
            metadata=metadata,
            arrays={k: v for k, v in explanation.arrays.items() if k.endswith(f"_{name}")},  # e.g. rgb_video
        )
    return out


#: frames converted to bytes at a time when a video is saved (a 60-s clip's float copies are 74 MB each at 64 px)
BYTES_CHUNK_FRAMES = 64


def _video_bytes(video: Tensor) -> Tensor:
    """Frames ``(frames, 3, H, W)`` in [0, 1] -> ``(frames, H, W, 3)`` uint8, a few frames at a time (the output is
    the only full-length copy)."""
    frames, channels, height, width = video.shape
    out = torch.empty(frames, height, width, channels, dtype=torch.uint8)
    for a in range(0, frames, BYTES_CHUNK_FRAMES):
        piece = video[a:a + BYTES_CHUNK_FRAMES].detach().cpu().float().clamp(0, 1).mul_(255).round_()
        out[a:a + BYTES_CHUNK_FRAMES] = piece.permute(0, 2, 3, 1)
    return out


def _numpy(t: Any) -> np.ndarray:
    if isinstance(t, Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)
