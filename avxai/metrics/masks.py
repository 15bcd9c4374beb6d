"""T-F masks of separation and enhancement explanations against the ideal binary mask of the target.

The ideal binary mask (IBM) of a target in a mixture keeps the time-frequency cells where the target is
louder than the interference (by ``threshold_db``); it is the classic "truth" of which regions a
separator needs for that target. :func:`mask_iou` compares an explanation's mask (or attribution) with it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avxai.checks import check_waveform
from avxai.engine import check_model_rate, evaluate_masks, prepare_scorer
from avxai.hygiene import evaluation_mode

__all__ = ["ideal_binary_mask", "ibm_on_grid", "mask_iou", "energy_share", "chance_iou", "preserve_delete_scores",
           "map_at_area", "mask_scores", "compare_with_ibm"]


def _stft_magnitude(wave: Tensor, n_fft: int, hop_length: int, win_length: int | None) -> Tensor:
    win = win_length or n_fft
    lead = wave.shape[:-1]
    spec = torch.stft(wave.reshape(-1, wave.shape[-1]), n_fft=n_fft, hop_length=hop_length, win_length=win,
                      window=torch.hann_window(win, dtype=wave.dtype, device=wave.device), center=True,
                      return_complex=True)
    return spec.abs().reshape(*lead, *spec.shape[-2:])


def _check_wave(name: str, wave) -> Tensor:
    """A float waveform ``(..., time)``, finite; it may be silent (one part of a mixture can be)."""
    return check_waveform(wave, name=name, min_rms=None, batched=False)


def ideal_binary_mask(target_wave: Tensor, interferer_wave: Tensor, n_fft: int, hop_length: int,
                      threshold_db: float = 0.0, win_length: int | None = None,
                      mel_fbank: Tensor | None = None) -> Tensor:
    """Ideal binary mask: 1 where ``20 log10(|T| / |I|) > threshold_db`` on the STFT grid.

    The STFT is the one :class:`avxai.modalities.Spectrogram` uses (Hann window of ``win_length``
    (default ``n_fft``), centred frames), so the mask lives on the same ``(freq, time)`` grid as an
    explanation of the mixture. ``interferer_wave`` is everything else in the mixture (the other
    speaker, or the noise). Cells where both are exactly zero are 0. With ``mel_fbank`` ``(freq, mel)``
    (a mel grid, ``Spectrogram(n_mels=...).mel_fbank``) the two mel powers ``fbank^T |X|^2`` are compared.

    Shape: ``(time,)`` or ``(1, time)`` or ``(1, 1, time)`` -> ``(freq | mel, frames)`` float in {0, 1};
    batched ``(..., time)`` -> ``(..., freq | mel, frames)``, with singleton leading axes dropped.
    """
    t = _check_wave("target_wave", target_wave)
    i = _check_wave("interferer_wave", interferer_wave)
    if t.shape != i.shape:
        raise ValueError(f"target {tuple(t.shape)} and interferer {tuple(i.shape)} must have the same shape; they "
                         "are the two parts of one mixture")
    if t.shape[-1] < n_fft:
        raise ValueError(f"the waveforms have {t.shape[-1]} samples, fewer than n_fft={n_fft}")
    if not 1 <= hop_length <= n_fft:
        raise ValueError(f"need 1 <= hop_length <= n_fft, got hop_length={hop_length}, n_fft={n_fft}")
    lead = [d for d in t.shape[:-1] if d != 1]
    t = t.reshape(*lead, t.shape[-1]).double()
    i = i.reshape(*lead, i.shape[-1]).double()
    mt = _stft_magnitude(t, n_fft, hop_length, win_length)
    mi = _stft_magnitude(i, n_fft, hop_length, win_length)
    if mel_fbank is not None:
        if mel_fbank.dim() != 2 or mel_fbank.shape[0] != mt.shape[-2]:
            raise ValueError(f"mel_fbank must be (freq={mt.shape[-2]}, mel) for n_fft={n_fft}, got "
                             f"{tuple(mel_fbank.shape)}")
        fb = mel_fbank.to(mt.dtype)
        mt = torch.einsum("fm,...ft->...mt", fb, mt**2).clamp_min(0).sqrt()
        mi = torch.einsum("fm,...ft->...mt", fb, mi**2).clamp_min(0).sqrt()
    ratio = 10.0 ** (float(threshold_db) / 20.0)
    return (mt > ratio * mi).to(target_wave.dtype)


def energy_share(target_wave: Tensor, interferer_wave: Tensor) -> float:
    """The target's share of the mixture energy, ``|t|^2 / (|t|^2 + |i|^2)``, a fraction in (0, 1)."""
    t = _check_wave("target_wave", target_wave).double().pow(2).sum()
    i = _check_wave("interferer_wave", interferer_wave).double().pow(2).sum()
    if t + i <= 0:
        raise ValueError("target and interferer are both silent: there is no energy to share")
    return float(t / (t + i))


def ibm_on_grid(modality, target_wave: Tensor, index: int = 0, threshold_db: float = 0.0) -> Tensor:
    """The IBM of ``target_wave`` in input ``index`` of a :class:`~avxai.modalities.Spectrogram`, on its grid.

    The interferer is the rest of the input (``mixture - target``, channels averaged); the STFT (and mel
    bands) are the modality's own, so the mask matches the explanation's grid.

    Shape: ``target_wave (time,)`` or ``(1, time)`` at the modality's sample rate -> ``grid_shape``.
    """
    mixture = modality.waveform[index].mean(dim=0)
    target = _check_wave("target_wave", target_wave).reshape(-1).to(mixture.dtype)
    if target.shape[-1] != mixture.shape[-1]:
        raise ValueError(f"the target has {target.shape[-1]} samples but the input has {mixture.shape[-1]}; they "
                         "must be the same recording at the same sample rate")
    return ideal_binary_mask(target, mixture - target, modality.n_fft, modality.hop_length, threshold_db,
                             modality.win_length, getattr(modality, "mel_fbank", None) if modality.n_mels else None)


def mask_iou(mask: Tensor, truth: Tensor, area: float | None = None) -> Tensor:
    """Intersection over union of the top-``area`` cells of ``mask`` with the binary ``truth``.

    ``mask`` is any map where larger = more relevant (an extremal mask, an occlusion attribution); it is
    binarised by keeping its ``round(area * cells)`` largest cells (ties by grid order). ``area`` is a
    fraction in (0, 1]; ``None`` uses the truth's own area, where IoU = precision = recall.
    ``truth`` is boolean or {0, 1}.

    Shape: one 1-D or 2-D grid ``(*grid)`` x ``(*grid)`` -> ``()``; batched ``(batch, *grid)`` with truth
    ``(*grid)`` -> ``(batch,)``; equal shapes of 3 or more axes are read as ``(batch, *grid)`` -> ``(batch,)``.
    """
    if not isinstance(mask, Tensor) or not isinstance(truth, Tensor):
        raise TypeError("mask and truth must be tensors on the same grid")
    if not torch.isfinite(mask).all():
        raise ValueError("mask contains NaN or infinite values")
    if truth.dtype != torch.bool:
        if not ((truth == 0) | (truth == 1)).all():
            raise ValueError("truth must be binary (bool, or 0/1 values); threshold a soft mask first")
        truth = truth > 0.5
    if mask.shape == truth.shape and mask.dim() <= 2:  # one grid (batched 3-D grids pass a batch axis)
        m, t = mask.reshape(1, -1), truth.reshape(1, -1)
        squeeze = True
    elif mask.shape == truth.shape:
        m, t = mask.reshape(mask.shape[0], -1), truth.reshape(truth.shape[0], -1)
        squeeze = False
    elif mask.dim() == truth.dim() + 1 and mask.shape[1:] == truth.shape:
        m = mask.reshape(mask.shape[0], -1)
        t = truth.reshape(1, -1).expand(mask.shape[0], -1)
        squeeze = False
    else:
        raise ValueError(f"mask {tuple(mask.shape)} and truth {tuple(truth.shape)} are not on the same grid; "
                         "compute the truth with the STFT of the explanation's modality")
    if area is not None and not 0.0 < float(area) <= 1.0:
        raise ValueError(f"area must be a fraction of the grid in (0, 1], got {area}")
    out = torch.empty(m.shape[0], dtype=torch.float64)
    cells = m.shape[1]
    for r in range(m.shape[0]):
        k = int(t[r].sum()) if area is None else int(round(float(area) * cells))
        if k == 0:
            raise ValueError("the truth is empty and no area was given: there is nothing to overlap")
        top = torch.zeros(cells, dtype=torch.bool)
        top[torch.argsort(m[r].detach().double().cpu(), descending=True, stable=True)[:max(k, 1)]] = True
        tr = t[r].cpu()
        union = (top | tr).sum()
        out[r] = (top & tr).sum() / union
    return out[0] if squeeze else out


@torch.no_grad()
def preserve_delete_scores(model, modality, scorer, mask: Tensor, batch_size: int = 32) -> dict[str, Tensor]:
    """Scores of the input that keeps only ``mask`` (``preserved``) and of the input with it removed (``deleted``).

    ``scorer`` is prepared on the model's output for the unperturbed input (source order, own-output
    reference), as a method does; the model runs in evaluation mode.

    Shape: mask ``(batch, *grid)`` in [0, 1] -> ``{"unmasked", "preserved", "deleted"}`` each ``(batch,)``.
    """
    check_model_rate(model, modality)
    with evaluation_mode(model):
        prepared, _ = prepare_scorer(model, modality, scorer)
        with torch.inference_mode():
            full = torch.ones(modality.batch_size, *modality.grid_shape, dtype=mask.dtype)
            scores = evaluate_masks(model, modality, prepared, torch.cat([full, mask, 1.0 - mask]), batch_size)
    b = modality.batch_size
    return {"unmasked": scores[:b].clone(), "preserved": scores[b:2 * b].clone(), "deleted": scores[2 * b:].clone()}


def chance_iou(area: float, truth_area: float) -> float:
    """Expected IoU of a random set covering ``area`` of the grid with a truth covering ``truth_area``."""
    if not (0 < area <= 1 and 0 < truth_area <= 1):
        raise ValueError(f"areas must be fractions in (0, 1], got {area} and {truth_area}")
    return area * truth_area / (area + truth_area - area * truth_area)


def map_at_area(explanation, area: float | None = None, index: int = 0):
    """The map of input ``index`` to binarise, and the area to keep: ``(map (*grid), area, k)``.

    Mask methods (``explanation.masks``): the mask whose area is closest to ``area`` (default: the first),
    ``k`` its index. Attribution methods: the attribution and ``area`` itself (``None``: the fraction of
    cells with positive attribution, i.e. whose removal lowers the score), ``k = None``.
    """
    if explanation.masks is not None:
        areas = list(explanation.areas or [])
        if not areas:
            raise ValueError("this explanation's masks carry no areas")
        k = 0 if area is None else min(range(len(areas)), key=lambda j: abs(areas[j] - area))
        return explanation.masks[index, k], float(areas[k]), k
    attribution = explanation.attribution[index]
    if area is None:
        area = max(float((attribution > 0).float().mean()), 1.0 / attribution.numel())
    if not 0.0 < float(area) <= 1.0:
        raise ValueError(f"area must be a fraction of the grid in (0, 1], got {area}")
    return attribution, float(area), None


def mask_scores(model, modality, scorer, explanation, area: float | None = None, index: int = 0) -> dict[str, float]:
    """Scores of input ``index`` with only the explanation's mask kept (``preserved``) and with it removed
    (``deleted``), for any method (see :func:`map_at_area` for which mask).

    Mask methods report their own scores of that mask (``explanation.scores["preserved"|"deleted"]``);
    attributions are binarised at their top ``area`` cells and the two inputs scored here.
    Returns ``{"area", "unmasked", "preserved", "deleted"}`` (scores in the scorer's units).
    """
    mask, used, k = map_at_area(explanation, area, index)
    own = explanation.scores
    if k is not None and all(name in own for name in ("unmasked", "preserved", "deleted")):
        preserved = float(own["preserved"][index].flatten()[k])
        deleted = float(own["deleted"][index].flatten()[k])
        unmasked = float(own["unmasked"][index].flatten()[0])
    else:
        if modality.batch_size != 1:
            raise ValueError("mask_scores scores binarised maps of a single input; explain one input at a time")
        cells = mask.numel()
        top = torch.zeros(cells, dtype=modality.representation.dtype)
        top[torch.argsort(mask.reshape(-1), descending=True, stable=True)[:max(1, round(used * cells))]] = 1.0
        pd = preserve_delete_scores(model, modality, scorer, top.view(1, *mask.shape))
        preserved, deleted, unmasked = float(pd["preserved"][0]), float(pd["deleted"][0]), float(pd["unmasked"][0])
    return {"area": used, "unmasked": unmasked, "preserved": preserved, "deleted": deleted}


def compare_with_ibm(model, modality, scorer, explanation, ibm: Tensor, area: float | None = None,
                     index: int = 0) -> dict[str, float]:
    """How an explanation of input ``index`` relates to a target's IBM, for any method.

    Mask methods (``explanation.masks``): the mask of ``area`` (default: the first area) is compared, and the
    preserved / deleted scores are the method's own. Attribution methods: the attribution's top ``area`` cells
    (default: the IBM's area) form the mask, and the preserved / deleted inputs are scored here.

    Returns ``{"area", "iou", "iou_at_ibm_area", "chance_iou", "ibm_area", "unmasked", "preserved", "deleted"}``
    (scores in the scorer's units).
    """
    truth = ibm > 0.5
    truth_area = float(truth.float().mean())
    if truth_area == 0.0:
        raise ValueError("the ideal binary mask is empty: the target is never louder than the rest of the input")
    if explanation.masks is None and area is None:
        area = truth_area
    scores = mask_scores(model, modality, scorer, explanation, area, index)
    mask, used, _ = map_at_area(explanation, area, index)
    return {"area": used, "iou": float(mask_iou(mask, truth, area=used)),
            "iou_at_ibm_area": float(mask_iou(mask, truth)), "chance_iou": chance_iou(used, truth_area),
            "ibm_area": truth_area, "unmasked": scores["unmasked"], "preserved": scores["preserved"],
            "deleted": scores["deleted"]}
