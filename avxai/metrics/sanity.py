"""Model-randomisation sanity check (Adebayo et al. 2018): does the explanation change when the model does?

The trained model's explanation is compared with explanations of a deep copy whose layers are
re-initialised one after another, cascading from the output towards the input. A method that explains
the model keeps a rank correlation near 1 only while nothing has changed and loses it as layers are
randomised; a method whose map stays correlated is explaining the input (an edge detector), not the model.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode
from avxai.engine import prepare_scorer
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer

UNCHANGED = "(none)"


@dataclass
class RandomisationResult:
    """Rank correlations between the trained model's map and maps of progressively randomised copies.

    Attributes
    ----------
    method : name of the explained method.
    layers : ``(L,)`` the layer randomised at each step, cumulative (step ``j`` has layers ``0..j`` random);
        ``"(none)"`` first when the unchanged copy was also explained (a determinism check, expect 1).
    correlations : ``(L, batch)`` Spearman correlation of the flattened maps (NaN where a map is constant).
    absolute : correlations were computed on ``|attribution|``.
    seed : seed of the re-initialisation.
    """

    method: str
    layers: list[str]
    correlations: np.ndarray
    absolute: bool
    seed: int
    attributions: list[Tensor] = field(default_factory=list, repr=False)

    def mean(self) -> np.ndarray:
        """Mean correlation over the batch per step, ``(L,)`` (NaN-aware)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.correlations, axis=1)

    def final(self) -> float:
        """Mean correlation once every listed layer is random (the usual one-number summary)."""
        return float(self.mean()[-1])

    def to_dict(self) -> dict:
        return {"method": self.method, "layers": list(self.layers), "absolute": self.absolute, "seed": self.seed,
                "correlations": [[None if np.isnan(v) else float(v) for v in row] for row in self.correlations]}


def parameter_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, from the output back to the input
    (reverse registration order, the usual order of a feed-forward model)."""
    names = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return list(reversed(names))


def reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every parameter under ``module`` in place, from ``generator`` only.

    Submodules with ``reset_parameters`` (Linear, Conv, BatchNorm, ...) use it, with the global RNG forked
    and seeded from ``generator`` (the caller's global RNG state is left untouched); other parameters are
    redrawn from a normal distribution with the parameter's own standard deviation (0.02 if it is 0).
    """
    done: set[int] = set()
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        if not own:
            continue
        if hasattr(sub, "reset_parameters"):
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                with torch.no_grad():
                    sub.reset_parameters()
            done.update(id(p) for p in own)
    with torch.no_grad():
        for p in module.parameters():
            if id(p) in done:
                continue
            std = float(p.detach().float().std()) if p.numel() > 1 else 0.0
            std = std if std > 0 else 0.02
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)


def _correlations(ref: Tensor, other: Tensor, absolute: bool) -> np.ndarray:
    a = ref.reshape(ref.shape[0], -1).detach().double().cpu().numpy()
    b = other.reshape(other.shape[0], -1).detach().double().cpu().numpy()
    if absolute:
        a, b = np.abs(a), np.abs(b)
    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        if np.ptp(a[i]) == 0 or np.ptp(b[i]) == 0:
            continue  # a constant map has no ranking
        out[i] = spearmanr(a[i], b[i]).statistic
    return out


def randomisation_check(method: Any, model: nn.Module, modality: Modality, scorer: Scorer,
                        config: Any = None, *, layers: list[str] | None = None, seed: int = 0,
                        absolute: bool = False, include_unchanged: bool = True, keep_attributions: bool = False,
                        reference: Tensor | None = None) -> RandomisationResult:
    """Cascading model-randomisation check of ``method`` on ``model``.

    Parameters
    ----------
    method : a :class:`avxai.methods.Method` (``avxai.methods.get_method("saliency")``); metrics sit beside
        methods, so they take the method object, not its registered name.
    config : the method's config (its seed, if any, is reused for every explanation).
    layers : module names to re-initialise, in order from the output to the input; default
        :func:`parameter_layers` (every module owning parameters, reverse registration order). ``[""]``
        names the whole model: one step that randomises every parameter at once.
    seed : seed of the re-initialisation (``torch.Generator``; the global RNG is not touched).
    absolute : correlate ``|attribution|`` (for signed maps whose sign flips with random weights).
    include_unchanged : also explain an unchanged deep copy first (its correlation should be 1: a check
        that the method is deterministic and that copying is harmless).
    keep_attributions : keep each step's attribution in the result.
    reference : the trained model's attribution ``(batch, *grid)`` if already computed with the same method,
        config, input and scorer (saves one explanation); ``None`` computes it.

    The scorer is prepared once on the trained model's output, so every map explains the same result
    (``ClassLogit()`` keeps the trained model's predicted class, an SDR keeps the trained model's output as
    reference). The model itself is never modified: a deep copy is randomised.

    Shape: correlations ``(steps, batch)``.
    """
    if isinstance(method, str):
        raise TypeError(f"method must be a method object, not the name {method!r}; pass "
                        f"avxai.methods.get_method({method!r})")
    if not callable(method) or not isinstance(getattr(method, "name", None), str):
        raise TypeError(f"method must be an avxai Method (e.g. avxai.methods.get_method('saliency')), got "
                        f"{type(method).__name__}")
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    layers = parameter_layers(model) if layers is None else list(layers)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no parameters to randomise; pass layers=[...] by name")
    for name in layers:
        try:
            model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{type(model).__name__} has no layer {name!r}; layers with parameters are "
                             f"{', '.join(parameter_layers(model)[:12])}") from None
    with evaluation_mode(model):
        scorer, _ = prepare_scorer(model, modality, scorer)
    if reference is None:
        reference = method(model, modality, scorer, config).attribution
    elif tuple(reference.shape) != (modality.batch_size, *modality.grid_shape):
        raise ValueError(f"reference has shape {tuple(reference.shape)}, expected (batch, *grid) = "
                         f"{(modality.batch_size, *modality.grid_shape)}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    work = copy.deepcopy(model)
    names, rows, maps = [], [], []
    if include_unchanged:
        attr = method(work, modality, scorer, config).attribution
        names.append(UNCHANGED)
        rows.append(_correlations(reference, attr, absolute))
        maps.append(attr)
    for name in layers:
        reinitialise(work.get_submodule(name), generator)
        attr = method(work, modality, scorer, config).attribution
        names.append(name or "(all)")
        rows.append(_correlations(reference, attr, absolute))
        maps.append(attr)
    return RandomisationResult(method=method.name, layers=names, correlations=np.stack(rows), absolute=absolute,
                               seed=seed, attributions=maps if keep_attributions else [])
