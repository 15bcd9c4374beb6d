"""Tasks for the command line: each builds (model, modality, scorer) from files for one kind of model."""

from avxai.tasks.base import Problem, Task
from avxai.tasks.speaker import SpeakerTask

#: name -> task; each task module adds itself here
TASKS: dict[str, Task] = {"speaker": SpeakerTask()}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


__all__ = ["Problem", "Task", "TASKS", "get_task", "SpeakerTask"]
