"""Tasks for the command line: each builds (model, modality, scorer) from files for one kind of model."""

from avxai.tasks.base import Problem, Task
from avxai.tasks.speaker import SpeakerTask
from avxai.tasks.enhancement import EnhancementTask
from avxai.tasks.separation import SeparationTask
from avxai.tasks.av_enhancement import AVEnhancementTask

#: name -> task; each task module adds itself here
TASKS: dict[str, Task] = {"speaker": SpeakerTask()}
TASKS.update({"enhancement": EnhancementTask(), "separation": SeparationTask()})
TASKS["av-enhancement"] = AVEnhancementTask()


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


__all__ = ["Problem", "Task", "TASKS", "get_task", "SpeakerTask", "EnhancementTask", "SeparationTask",
           "AVEnhancementTask"]
