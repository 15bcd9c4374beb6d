"""Tasks: how the command line turns files into (model, modality, scorer) for one kind of model."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer


@dataclass
class Problem:
    """Everything a method needs for one explanation, plus what the figures should show."""

    model: nn.Module
    modality: Modality
    scorer: Scorer
    metadata: dict[str, Any] = field(default_factory=dict)
    #: objects the task's own outputs need (e.g. the clean reference for an ideal binary mask); not saved
    extras: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One kind of model explained from the command line (``avxai explain --task NAME``).

    ``options`` names the ``explain`` options the task reads (``input``, ``reference``, ``enroll``, ...);
    the command line refuses any other task option that was given, so no flag is silently ignored.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def prepare(self, args: argparse.Namespace) -> Problem:
        """Build the problem from parsed arguments; raise ``ValueError`` naming the bad input."""

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """Write task-specific files beside the saved explanation in ``out`` (figures that need the task's
        inputs); return their names. Default: none."""
        return []


def read_segments(path: "str | Path | None") -> list[dict] | None:
    """Labelled segments ``[{"start_s", "end_s", "label"}, ...]`` from a JSON file (see ``avxai.data.mixtures``)."""
    if path is None:
        return None
    from avxai.data.mixtures import load_segments

    if not Path(path).exists():
        raise ValueError(f"segment file {path} does not exist")
    return [asdict(s) for s in load_segments(path)]
