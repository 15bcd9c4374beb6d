"""Hyper-parameters of extremal perturbation (:mod:`avxai.methods.extremal`): a frozen dataclass, checked on
construction, with the values derived from it for a grid (step and sigma per axis, the regulariser's schedule)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from avxai.methods.base import MethodConfig
from avxai.methods.smooth_mask import default_sigma, default_step, per_axis
from avxai.perturbations import parse_perturbation

VARIANTS = ("preserve", "delete", "dual")
OPTIMISERS = ("adam", "sgd")
REWARD_SCALES = ("range", "unmasked", "none")


def _areas(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        value = (value,)
    try:
        areas = tuple(float(a) for a in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of fractions such as (0.05, 0.1, 0.2), got {value!r}") from None
    if not areas:
        raise ValueError(f"{name} must hold at least one area, e.g. (0.1,)")
    bad = [a for a in areas if not (0.0 < a < 1.0) or not math.isfinite(a)]
    if bad:
        raise ValueError(f"{name} must be fractions of the grid strictly between 0 and 1 (exclusive), got {bad}; "
                         "an area of 0 keeps nothing and 1 keeps everything, so there is nothing to optimise")
    if len(set(areas)) != len(areas):
        raise ValueError(f"{name} holds duplicates {areas}; list each area once")
    return areas


@dataclass(frozen=True)
class ExtremalConfig(MethodConfig):
    """Extremal perturbation hyper-parameters.

    areas : fractions of the grid kept by the masks, each in (0, 1); one mask per area.
    variant : ``"preserve"``, ``"delete"`` or ``"dual"`` (see the module docstring).
    iterations : forward passes of ``K * B`` perturbed inputs (``dual``: ``2 * K * B``); each but the last
        is followed by a backward pass and a step of the masks, and the last one scores the final masks
        (so the final scores are the last entries of the history).
    optimiser : ``"adam"`` (betas ``betas``) or ``"sgd"`` (momentum ``momentum``); ``learning_rate`` for both.
        The mask parameters are projected back onto [0, 1] after every step.
    lambda0, growth : the area regulariser weight grows geometrically from ``lambda0`` to
        ``lambda0 * growth`` over ``iterations`` steps.
    reward_scale : the reward is the score divided, per input, by ``"range"``: ``|score(x) - score(all
        removed)|`` (one extra forward at the start; makes ``lambda0`` independent of the scorer's units),
        ``"unmasked"``: ``|score(x)|``, or ``"none"``.
    step : spacing of the mask parameters in grid cells, one int for every axis or one per axis
        (e.g. ``(mel, time)``); ``None``: about 32 parameters per axis.
    mask_axes : the grid axes the masks vary along (``("time",)``: masks constant across frequency, which choose
        *when* rather than which bands; on real speaker and VAD models they do not synthesise spectra the recording
        never had, see docs/results/extremal_real_models.md); ``None``: every axis. ``step`` and ``sigma`` then
        have one value per mask axis. A single name is a one-axis tuple (``--set mask_axes=time``).
    sigma : smooth-mask kernel width in grid cells, per axis (the smallest feature a mask can have);
        ``None``: twice ``step`` on 1- and 2-D grids (below that a run of ones dips between parameter points),
        three times ``step`` on 3-D (video) grids, where ``2 * step`` leaves a dot lattice inside the kept blobs
        (:data:`avxai.methods.smooth_mask.SIGMA_PER_STEP`).
    temperature : smooth-max temperature (0.05: close to a max over the neighbourhood).
    oversample : smooth-mask cells per step before linear upsampling to the grid (cost vs. sharpness).
    radius : the smooth max covers parameter points within ``radius * sigma`` along each axis.
    perturbation : override of the modality's perturbation (a name for ``parse_perturbation``, e.g.
        ``"pyramid-tf:8"``, ``"zero"``, ``"noise:10"``); ``None`` keeps the modality's own.
    init, init_jitter, seed : parameters start at ``init`` plus uniform noise of half-width ``init_jitter``
        drawn from a generator seeded with ``seed``.
    patience, tolerance : stop early once, over the last ``patience`` iterations, every row's reward
        (scaled, see ``reward_scale``) and area have changed by less than ``tolerance``; ``None`` = never.
    saturation : the reward saturates (Fong et al. 2019 cap their area-growth bars 25 % above the unmasked
        score): with ``s1`` the unmasked and ``s0`` the fully removed input's score, a preserved score above
        ``s1 + (saturation - 1) |s1 - s0|`` (a deleted score below ``s0 - (saturation - 1) |s1 - s0|``) earns no
        more reward and gives no gradient, so the masks gain nothing by building an input the model scores above
        the real one (scattered blobs of noise that a pretrained model likes better than the speech); ``None``:
        no saturation (the paper's objective).
    warn_above, area_tolerance, ill_conditioned : when to warn (``metadata["warnings"]`` and an
        :class:`~avxai.methods.base.ExplanationWarning`): a preserved score above the unmasked one by more than
        ``warn_above - 1`` (0.25 = 25 %) of ``max(|s1|, |s1 - s0|)``; a final mask area more than
        ``area_tolerance`` from its target; ``|s1 - s0| <= ill_conditioned * max(|s1|, |s0|)`` (the score
        barely moves when the whole input is removed).
    growth_areas : areas whose preserved score, as a fraction of the unmasked score, forms the
        area-growth curve (the paper's Fig. 5); areas not in ``areas`` are optimised alongside them.
        ``None``: the requested areas.
    media_area : the area whose mask makes the saved ``preserved`` / ``deleted`` media; ``None`` = the
        middle of the sorted areas (0.2 for the defaults).
    progress : show a tqdm progress bar.
    """

    areas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    variant: str = "preserve"
    iterations: int = 300
    optimiser: str = "adam"
    learning_rate: float = 0.05
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    lambda0: float = 0.05
    growth: float = 6000.0
    reward_scale: str = "range"
    step: "int | tuple[int, ...] | None" = None
    sigma: "float | tuple[float, ...] | None" = None
    mask_axes: "str | tuple[str, ...] | None" = None
    temperature: float = 0.05
    oversample: int = 2
    radius: float = 2.0
    perturbation: str | None = None
    init: float = 0.5
    init_jitter: float = 0.01
    seed: int = 0
    patience: int | None = None
    tolerance: float = 1e-3
    saturation: float | None = None
    warn_above: float = 1.25
    area_tolerance: float = 0.03
    ill_conditioned: float = 0.05
    growth_areas: tuple[float, ...] | None = None
    media_area: float | None = None
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "areas", _areas(self.areas, "areas"))
        if self.growth_areas is not None:
            object.__setattr__(self, "growth_areas", _areas(self.growth_areas, "growth_areas"))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {self.iterations!r}")
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), e.g. (0.9, 0.999), got {self.betas}")
        object.__setattr__(self, "betas", betas)
        if not self.lambda0 > 0:
            raise ValueError(f"lambda0 (the area regulariser weight) must be > 0, got {self.lambda0}")
        if not self.growth >= 1:
            raise ValueError(f"growth must be >= 1 (the regulariser weight grows from lambda0 to lambda0 * growth), "
                             f"got {self.growth}")
        if self.reward_scale not in REWARD_SCALES:
            raise ValueError(f"reward_scale must be one of {REWARD_SCALES}, got {self.reward_scale!r}")
        if self.step is not None:
            steps = (self.step,) if isinstance(self.step, (int, float)) else tuple(self.step)
            if not steps or any(float(s) < 1 or float(s) != int(s) for s in steps):
                raise ValueError(f"step must be a whole number of grid cells >= 1 (one, or one per axis), "
                                 f"got {self.step}")
            object.__setattr__(self, "step", int(self.step) if isinstance(self.step, (int, float))
                               else tuple(int(s) for s in steps))
        if self.sigma is not None:
            sigmas = (self.sigma,) if isinstance(self.sigma, (int, float)) else tuple(self.sigma)
            if not sigmas or any(not float(s) > 0 for s in sigmas):
                raise ValueError(f"sigma must be > 0 grid cells (one, or one per axis), got {self.sigma}")
            if not isinstance(self.sigma, (int, float)):
                object.__setattr__(self, "sigma", tuple(float(s) for s in sigmas))
        if self.mask_axes is not None:
            names = (self.mask_axes,) if isinstance(self.mask_axes, str) else tuple(self.mask_axes)
            if not names or not all(isinstance(a, str) and a for a in names) or len(set(names)) != len(names):
                raise ValueError(f"mask_axes must name grid axes once each, e.g. ('time',), got {self.mask_axes!r}")
            object.__setattr__(self, "mask_axes", names)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if isinstance(self.oversample, bool) or not isinstance(self.oversample, int) or self.oversample < 1:
            raise ValueError(f"oversample must be an int >= 1, got {self.oversample!r}")
        if not self.radius > 0:
            raise ValueError(f"radius must be > 0 (in units of sigma), got {self.radius}")
        if self.perturbation is not None:
            parse_perturbation(self.perturbation)  # raises ValueError naming the choices
        if not 0.0 <= self.init <= 1.0:
            raise ValueError(f"init must be in [0, 1], got {self.init}")
        if not 0.0 <= self.init_jitter <= 0.5:
            raise ValueError(f"init_jitter must be in [0, 0.5], got {self.init_jitter}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be an int >= 1 or None (no early stopping), got {self.patience!r}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.saturation is not None and not (isinstance(self.saturation, (int, float)) and
                                                not isinstance(self.saturation, bool) and self.saturation >= 1.0
                                                and math.isfinite(self.saturation)):
            raise ValueError(f"saturation must be None or a number >= 1 (1.0: the reward stops at the unmasked "
                             f"score, 1.25: 25 % above it), got {self.saturation!r}")
        if not (self.warn_above >= 1.0 and math.isfinite(self.warn_above)):
            raise ValueError(f"warn_above must be a finite number >= 1 (1.25: warn 25 % above the unmasked score), "
                             f"got {self.warn_above!r}")
        if not 0.0 <= self.area_tolerance < 1.0:
            raise ValueError(f"area_tolerance must be in [0, 1), got {self.area_tolerance!r}")
        if not 0.0 <= self.ill_conditioned < 1.0:
            raise ValueError(f"ill_conditioned must be in [0, 1), got {self.ill_conditioned!r}")
        if self.media_area is not None and float(self.media_area) not in self.areas:
            raise ValueError(f"media_area {self.media_area} is not one of the areas {self.areas}; pick one of them "
                             "or None")

    # -- derived ----------------------------------------------------------------------------------
    def resolve(self, grid_shape: tuple[int, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Step and sigma per axis for a grid ``grid_shape`` (in grid cells)."""
        nd = len(grid_shape)
        step = per_axis(self.step, nd, "step") if self.step is not None else default_step(grid_shape)
        sigma = per_axis(self.sigma, nd, "sigma") if self.sigma is not None else default_sigma(step)
        return tuple(float(s) for s in step), sigma

    def optimised_areas(self) -> tuple[float, ...]:
        """The requested areas followed by the growth-curve areas not among them."""
        extra = tuple(a for a in (self.growth_areas or ()) if a not in self.areas)
        return self.areas + extra

    def media_mask_area(self) -> float:
        return float(self.media_area) if self.media_area is not None else sorted(self.areas)[len(self.areas) // 2]

    def lambda_at(self, iteration: int) -> float:
        """Regulariser weight at ``iteration`` (0-based): ``lambda0 * growth ** (iteration / (iterations - 1))``."""
        frac = iteration / max(1, self.iterations - 1)
        return self.lambda0 * self.growth ** frac


__all__ = ["ExtremalConfig", "OPTIMISERS", "REWARD_SCALES", "VARIANTS"]
