"""Tasks: how a kind of model (speaker, enhancement, separation, audio-visual enhancement) and its inputs become
a :class:`Problem` (model, modality, scorer) that any method explains.

Each task module holds a frozen options dataclass, ``build(model, options) -> Problem`` and the task's own
outputs (figures beside a saved explanation). No command-line parsing here: ``avxai.cli`` maps its flags onto
the options, and Python code builds them directly::

    import avxai
    problem = avxai.tasks.speaker.build(model, avxai.tasks.speaker.SpeakerOptions(input=wav, sample_rate=16000))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from torch import nn

from avxai.data.mixtures import load_segments
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer

__all__ = ["Problem", "Task", "read_segments"]


@dataclass
class Problem:
    """Everything a method needs for one explanation, plus what the figures should show."""

    model: nn.Module
    modality: Modality
    scorer: Scorer
    metadata: dict[str, Any] = field(default_factory=dict)
    #: objects the task's own outputs need (e.g. the clean reference for an ideal binary mask); not saved
    extras: dict[str, Any] = field(default_factory=dict)


class Task:
    """One kind of model: its options class, how to build a problem, its bundled model, its own outputs.

    A task is declared in one line, its settings as class keywords::

        class SpeakerTask(Task, name="speaker", help="...", options=SpeakerOptions, model="speakernet", build=build):

    ``avxai explain --task NAME`` reads the flags whose names are fields of ``options_class``; any other
    task flag that was given is an error, so no flag is silently ignored.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    #: frozen dataclass of the task's inputs and settings
    options_class: ClassVar[type]
    #: the bundled reference model's name (the model when ``--model`` is not given); ``None``: ``--model`` is required
    default_model: ClassVar[str | None]
    #: ``builder(model, options) -> Problem``: the task module's ``build``
    builder: ClassVar[Callable[[nn.Module, Any], Problem]]

    def __init_subclass__(cls, *, name: str, help: str, options: type, model: str | None,
                          build: Callable[[nn.Module, Any], Problem], **kwargs: Any):
        super().__init_subclass__(**kwargs)
        cls.name, cls.help, cls.options_class, cls.default_model = name, help, options, model
        cls.builder = staticmethod(build)

    def build(self, model: nn.Module, options) -> Problem:
        """Build the problem for ``model`` from ``options``; raise ``ValueError`` naming the bad input."""
        return self.builder(model, options)

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """Write task-specific files beside the saved explanation in ``out`` (figures that need the task's
        inputs); return their names. Default: none."""
        return []


def read_segments(segments: "str | Path | list | tuple | None") -> list[dict] | None:
    """Labelled segments ``[{"start_s", "end_s", "label"}, ...]`` from a JSON file (see
    :func:`avxai.data.mixtures.load_segments`), or the given list of such dicts; ``None`` stays ``None``."""
    if segments is None:
        return None
    if isinstance(segments, (list, tuple)):
        return [dict(s) if isinstance(s, dict) else asdict(s) for s in segments]
    if not Path(segments).exists():
        raise ValueError(f"segment file {segments} does not exist")
    return [asdict(s) for s in load_segments(segments)]
