"""SpeechBrain pretrained interfaces from a local folder (``hyperparams.yaml`` + ``.ckpt`` files), behind avxai's
contract.

Needs the optional dependency: ``pip install avxai[speechbrain]``. The folder is what ``from_hparams(source=...,
savedir=folder)`` leaves (or a copy of a model repository): ``hyperparams.yaml`` with ``modules`` and a
``pretrainer``, and one ``<name>.ckpt`` per pretrainer loadable (or the file its pretrainer path names, as in a
cloned repository: ``label_encoder.txt``). It is loaded as ``from_hparams(source=folder, savedir=folder)`` does,
offline: every file must already be in the folder (a pretrainer path naming a HuggingFace repository is never
fetched). Like ``from_hparams``, reading ``hyperparams.yaml`` builds the classes
it names: load only folders you trust.

Interfaces (``interface=``), each with the avxai model it becomes and the contract it states:

- ``EncoderClassifier``, ``SpeakerRecognition``: a speaker embedder, ``compute_features`` -> ``mean_var_norm`` ->
  ``embedding_model``; ``sample_rate``, ``embedder()`` (itself).
- ``SepformerSeparation``: a separator, ``encoder`` -> ``masknet`` -> ``decoder`` per source; ``sample_rate``,
  ``num_sources`` (``num_spks``).
- ``SpectralMaskEnhancement``: an enhancer, a mask on log1p magnitudes -> resynthesis with the noisy phase;
  ``sample_rate``, ``n_fft``, ``hop_length``.

Each adapter runs the interface's own modules in its own order (as ``encode_batch``, ``separate_batch`` and
``enhance_batch`` do), on full-length inputs, without ``no_grad``: gradients reach the waveform. The sample rate is
``sample_rate`` in ``hyperparams.yaml``, else the ``sample_rate=`` argument, else the rate the feature front end
was built for (``Fbank`` / ``STFT``); none of them is an error.
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from avxai.checks import check_sample_rate
from avxai.models.contract import agreed_sample_rate
from avxai.models.spec import SpecKind, model_folder, register_spec_kind

__all__ = ["SpeechBrainModel", "SpeechBrainEmbedder", "SpeechBrainSeparator", "SpeechBrainEnhancer",
           "load_speechbrain", "is_speechbrain_folder", "INTERFACES", "SPEC_KIND"]

#: interface name -> (its module in speechbrain.inference, the modules it needs, the adapter's kind)
INTERFACES = {
    "EncoderClassifier": ("classifiers", ("compute_features", "mean_var_norm", "embedding_model"), "speaker"),
    "SpeakerRecognition": ("speaker", ("compute_features", "mean_var_norm", "embedding_model"), "speaker"),
    "SepformerSeparation": ("separation", ("encoder", "masknet", "decoder"), "separator"),
    "SpectralMaskEnhancement": ("enhancement", ("enhance_model",), "enhancer"),
}
LOAD_ARGS = ("interface", "sample_rate")


def is_speechbrain_folder(spec: Any) -> bool:
    """Whether ``spec`` is a folder holding ``hyperparams.yaml``."""
    return isinstance(spec, (str, Path)) and (Path(spec) / "hyperparams.yaml").is_file()


def _mono(waveform: Any, who: str) -> Tensor:
    if not isinstance(waveform, Tensor) or waveform.dim() != 3 or waveform.shape[1] != 1:
        shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
        raise ValueError(f"{who} takes a mono waveform (batch, 1, time), got {shape}; average the channels first "
                         "(mono=True)")
    return waveform[:, 0].float()


class SpeechBrainModel(nn.Module):
    """The modules of a SpeechBrain interface (``mods``), its ``sample_rate`` and its name (``interface``)."""

    def __init__(self, mods: nn.ModuleDict, *, sample_rate: int, interface: str):
        super().__init__()
        self.mods = mods
        self.sample_rate = check_sample_rate(sample_rate)
        self.interface = interface

    def extra_repr(self) -> str:
        return f"interface={self.interface}, sample_rate={self.sample_rate}"


class SpeechBrainEmbedder(SpeechBrainModel):
    """``EncoderClassifier.encode_batch`` as a module: Fbank -> ``mean_var_norm`` -> ``embedding_model``.

    Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, dim)``.
    """

    def embedder(self) -> "SpeechBrainEmbedder":
        """Itself: it returns embeddings."""
        return self

    def forward(self, waveform: Tensor) -> Tensor:
        wavs = _mono(waveform, self.interface)
        lengths = torch.ones(wavs.shape[0], device=wavs.device)  # relative lengths: no padding
        feats = self.mods.mean_var_norm(self.mods.compute_features(wavs), lengths)
        return self.mods.embedding_model(feats, lengths).reshape(wavs.shape[0], -1)


class SpeechBrainSeparator(SpeechBrainModel):
    """``SepformerSeparation.separate_batch`` as a module, sources first.

    Shape: mixture ``(batch, 1, time)`` -> sources ``(batch, num_sources, time)``.
    """

    def __init__(self, mods: nn.ModuleDict, *, sample_rate: int, interface: str, num_sources: int):
        super().__init__(mods, sample_rate=sample_rate, interface=interface)
        if isinstance(num_sources, bool) or not isinstance(num_sources, int) or num_sources <= 0:
            raise ValueError(f"num_spks of a separator must be a positive int, got {num_sources!r}")
        self.num_sources = num_sources

    def forward(self, waveform: Tensor) -> Tensor:
        mix = _mono(waveform, self.interface)
        encoded = self.mods.encoder(mix)
        masks = self.mods.masknet(encoded)  # (sources, batch, channels, frames)
        sources = torch.stack([self.mods.decoder(encoded * masks[i]) for i in range(self.num_sources)], dim=1)
        length = mix.shape[-1]  # the decoder's transposed convolution may end a few samples off
        if sources.shape[-1] < length:
            return nn.functional.pad(sources, (0, length - sources.shape[-1]))
        return sources[..., :length]


class SpeechBrainEnhancer(SpeechBrainModel):
    """``SpectralMaskEnhancement.enhance_batch`` as a module: mask on log1p magnitudes, noisy phase resynthesis.

    Shape: noisy ``(batch, 1, time)`` -> enhanced ``(batch, 1, time)``.
    """

    def __init__(self, mods: nn.ModuleDict, *, sample_rate: int, interface: str, stft: nn.Module,
                 magnitude: Any, resynth: Any):
        super().__init__(mods, sample_rate=sample_rate, interface=interface)
        self.stft = stft
        self.magnitude, self.resynth = magnitude, resynth
        self.n_fft, self.hop_length = int(stft.n_fft), int(stft.hop_length)
        self._lengths = "lengths" in inspect.signature(mods.enhance_model.forward).parameters

    def forward(self, waveform: Tensor) -> Tensor:
        noisy = _mono(waveform, self.interface)
        feats = torch.log1p(self.magnitude(self.stft(noisy)))
        if self._lengths:  # what enhance_file passes: full-length inputs
            mask = self.mods.enhance_model(feats, lengths=torch.ones(noisy.shape[0], device=noisy.device))
        else:
            mask = self.mods.enhance_model(feats)
        return self.resynth(torch.expm1(mask * feats), noisy).unsqueeze(1)


def _speechbrain() -> tuple[Any, Any, Any]:
    # the optional dependency is imported lazily: avxai works without it
    try:
        from hyperpyyaml import load_hyperpyyaml  # noqa: PLC0415
        from speechbrain.utils.fetching import FetchConfig, LocalStrategy  # noqa: PLC0415
    except ImportError as err:
        raise ImportError(f"SpeechBrain models need the optional dependency speechbrain, which is not installed: "
                          f"pip install avxai[speechbrain] ({err})") from None
    return load_hyperpyyaml, FetchConfig, LocalStrategy


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _interface_name(folder: Path, hparams: Mapping[str, Any], given: Any) -> str:
    """``given``, else ``config.json``'s ``speechbrain_interface``, else the one whose modules the folder has."""
    name = given
    if name is None and (folder / "config.json").is_file():
        try:
            name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("speechbrain_interface")
        except (OSError, ValueError, AttributeError):
            name = None
    modules = hparams.get("modules") or {}
    if name is None:
        found = [n for n, (_, needed, _) in INTERFACES.items() if all(m in modules for m in needed)]
        if not found:
            raise ValueError(f"{folder}/hyperparams.yaml has modules {', '.join(modules) or 'none'}, which fit no "
                             f"interface avxai adapts; name it with interface=NAME ({', '.join(INTERFACES)})")
        name = found[0]
    if name not in INTERFACES:
        raise ValueError(f"SpeechBrain interface {name!r} is not one avxai adapts; use one of {', '.join(INTERFACES)}")
    missing = [m for m in INTERFACES[name][1] if m not in modules]
    if missing:
        raise ValueError(f"{folder}/hyperparams.yaml lacks the module(s) {', '.join(missing)} that {name} needs "
                         "under 'modules'")
    return name


def _sample_rate(folder: Path, hparams: Mapping[str, Any], given: Any) -> int:
    stated = hparams.get("sample_rate")
    if stated is not None or given is not None:
        return agreed_sample_rate(stated, given, who=f"{folder}/hyperparams.yaml", stated_as="sample_rate: {}",
                                  missing="")
    front = hparams.get("compute_features") or hparams.get("compute_stft")  # the rate the front end was built for
    rate = getattr(getattr(front, "compute_fbanks", front), "sample_rate", None)
    if rate is None:
        raise ValueError(f"{folder}/hyperparams.yaml states no sample_rate; add 'sample_rate: HZ' to it or pass "
                         "sample_rate=HZ (--model-arg sample_rate=8000)")
    return check_sample_rate(rate, f"sample_rate of {folder}")


def _local_paths(folder: Path, pretrainer: Any) -> None:
    """Point every pretrainer loadable at its file in ``folder``: ``<name>.ckpt`` (what ``from_hparams`` collects)
    or the file its path names (``label_encoder.txt`` of a cloned repository); none of them: one line naming it."""
    missing = []
    for name in pretrainer.loadables:
        if not pretrainer.is_loadable(name):
            continue
        named = Path(str(pretrainer.paths[name])).name if name in pretrainer.paths else None
        found = [f for f in (f"{name}.ckpt", named) if f and (folder / f).is_file()]
        if not found:
            missing.append(f"{name}.ckpt" + (f" (or {named})" if named and named != f"{name}.ckpt" else ""))
        elif found[0] != f"{name}.ckpt":  # a local path: fetched from the folder itself, never from the hub
            pretrainer.paths[name] = str((folder / found[0]).absolute())
    if missing:
        raise ValueError(f"{folder} lacks {', '.join(missing)} (the weights hyperparams.yaml's pretrainer loads); "
                         "copy them into the folder (nothing is downloaded)")


def load_speechbrain(folder: "str | Path", *, interface: str | None = None, **args: Any) -> SpeechBrainModel:
    """A SpeechBrain pretrained interface from a local folder, as avxai's model (eval mode; nothing downloads).

    ``interface``: the SpeechBrain class (:data:`INTERFACES`); default ``config.json``'s ``speechbrain_interface``,
    else the one whose modules ``hyperparams.yaml`` defines. ``args``: ``sample_rate`` (Hz) when the folder states
    none. A missing ``hyperparams.yaml`` or ``.ckpt`` file, module or sample rate raises one line naming it.

    Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, dim)`` / sources ``(batch, num_sources, time)`` /
    enhanced ``(batch, 1, time)``.

    Example
    -------
    >>> model = load_speechbrain("pretrained_models/spkrec-ecapa-voxceleb")   # embedder(): itself
    >>> model = load_speechbrain("sepformer-wsj02mix")                          # num_sources == 2
    """
    folder = model_folder(folder, args, loader="load_speechbrain", known=LOAD_ARGS,
                          holds="hyperparams.yaml and the .ckpt files")
    if not (folder / "hyperparams.yaml").is_file():
        raise ValueError(f"{folder} lacks hyperparams.yaml; pass the folder from_hparams(savedir=...) filled")
    load_hyperpyyaml, fetch_config, local_strategy = _speechbrain()
    try:
        with open(folder / "hyperparams.yaml", encoding="utf-8") as stream:
            hparams = load_hyperpyyaml(stream)
    except ImportError:
        raise
    except Exception as err:  # HyperPyYAML's errors are long: one line
        raise ValueError(f"{folder}/hyperparams.yaml does not load ({type(err).__name__}: {_first_line(err)})"
                         ) from None
    if not isinstance(hparams, Mapping) or "modules" not in hparams or "pretrainer" not in hparams:
        raise ValueError(f"{folder}/hyperparams.yaml lacks 'modules' or 'pretrainer' (the two keys from_hparams reads)")
    name = _interface_name(folder, hparams, interface)
    rate = _sample_rate(folder, hparams, args.get("sample_rate"))
    module_name, _, kind = INTERFACES[name]
    pretrainer = hparams["pretrainer"]
    _local_paths(folder, pretrainer)
    interface_cls = getattr(importlib.import_module(f"speechbrain.inference.{module_name}"), name)  # optional dep.
    hparams["savedir"] = str(folder)
    try:  # what from_hparams(source=folder, savedir=folder) does, with every file already in the folder
        pretrainer.set_collect_in(folder)
        pretrainer.collect_files(default_source=str(folder), local_strategy=local_strategy.NO_LINK,
                                 fetch_config=fetch_config(allow_network=False))
        pretrainer.load_collected()
        loaded = interface_cls(modules=hparams["modules"], hparams=hparams)
    except Exception as err:  # a size mismatch or a missing hyperparameter, from inside speechbrain: one line
        raise ValueError(f"{folder} does not load as {name} ({type(err).__name__}: {_first_line(err)})") from None
    mods = loaded.mods
    if kind == "speaker":
        model = SpeechBrainEmbedder(mods, sample_rate=rate, interface=name)
    elif kind == "separator":
        model = SpeechBrainSeparator(mods, sample_rate=rate, interface=name, num_sources=hparams.get("num_spks"))
    else:
        model = SpeechBrainEnhancer(mods, sample_rate=rate, interface=name, stft=loaded.hparams.compute_stft,
                                    magnitude=loaded.hparams.spectral_magnitude, resynth=loaded.hparams.resynth)
    return model.eval()


#: ``--model FOLDER`` for a SpeechBrain folder; ``--model-arg interface=NAME`` / ``sample_rate=HZ`` go to
#: :func:`load_speechbrain`
SPEC_KIND = register_spec_kind(SpecKind(
    "speechbrain", is_speechbrain_folder, lambda spec, args: load_speechbrain(spec, **args), extra="speechbrain",
    example="spkrec-ecapa-voxceleb/ (a SpeechBrain folder: hyperparams.yaml and its .ckpt files; EncoderClassifier, "
            "SepformerSeparation, SpectralMaskEnhancement)"))
