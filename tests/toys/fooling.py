"""A toy model that extremal perturbation can fool the way real pretrained models were fooled (issue 16).

The input is a 1-D grid (``GridToy``, axis ``time``): a noise floor of level ``FLOOR`` everywhere (the background
of a recording, the noise in the pauses) and "speech" of level 1 in the cells ``SPEECH``. :class:`OnsetBait`
scores the mean level inside ``SPEECH`` (the real evidence) plus ``bait`` times the onsets in the pauses, steps
``|x[t] - x[t-1]|`` above ``threshold`` between two cells outside the speech (each counted by how far it exceeds
the threshold): a feature that the real input never triggers (its pauses are a flat floor).

Removing cells to digital silence (the ``zero`` perturbation) turns every kept blob of the floor into two fresh
onsets: a mask of scattered floor blobs scores far above the real input, as Resemblyzer's masks kept blobs of noise
in the pauses and scored 0.8 against 0.53 for the real input. Removing cells to the input's own floor (the
``floor`` perturbation) leaves nothing to gain there: the only evidence left is the speech.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CELLS = 64
SPEECH = slice(24, 40)
FLOOR = 0.5


def fooling_input(cells: int = CELLS, speech: slice = SPEECH, floor: float = FLOOR) -> Tensor:
    """The floor everywhere and 1 in ``speech``. Shape: ``(1, 1, cells)``."""
    x = torch.full((1, 1, cells), float(floor))
    x[..., speech] = 1.0
    return x


class OnsetBait(nn.Module):
    """Logits ``(n, 2)``: class 0 = mean of the input in ``speech`` + ``bait`` * sum of the onsets above
    ``threshold`` between two cells outside ``speech`` (in the pauses); class 1 = 0. Input ``(n, 1, cells)``."""

    def __init__(self, speech: slice = SPEECH, bait: float = 1.0, threshold: float = 0.1, cells: int = CELLS):
        super().__init__()
        self.speech, self.bait, self.threshold = speech, float(bait), float(threshold)
        pause = torch.ones(cells)
        pause[speech] = 0.0
        self.register_buffer("pause_steps", pause[1:] * pause[:-1])  # (cells - 1,): steps inside a pause
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        x = x.mean(dim=1)
        evidence = x[:, self.speech].mean(dim=1)
        steps = torch.relu((x[:, 1:] - x[:, :-1]).abs() - self.threshold)
        onsets = (steps * self.pause_steps).sum(dim=1)
        score = self.gain * evidence + self.bait * onsets
        return torch.stack([score, torch.zeros_like(score)], dim=1)
