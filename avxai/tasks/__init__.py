"""Tasks: each kind of model as a frozen options dataclass plus ``build(model, options) -> Problem``.

``TASKS`` maps the task names of ``avxai explain --task`` to task objects (options class, build, bundled
model, own outputs). The modules are usable on their own from Python::

    import avxai
    problem = avxai.tasks.speaker.build(model, avxai.tasks.speaker.SpeakerOptions(input=wav, sample_rate=16000))
"""

from avxai.tasks import audio, av_enhancement, enhancement, frames, separation, speaker
from avxai.tasks.audio import AudioOptions, default_stft, stft_for
from avxai.tasks.av_enhancement import AVEnhancementOptions, AVEnhancementTask
from avxai.tasks.base import Problem, Task
from avxai.tasks.enhancement import EnhancementOptions, EnhancementTask
from avxai.tasks.frames import FramesOptions, FramesTask
from avxai.tasks.segmented import explain_in_segments
from avxai.tasks.separation import SeparationOptions, SeparationTask
from avxai.tasks.speaker import SpeakerOptions, SpeakerTask

#: name -> task
TASKS: dict[str, Task] = {task.name: task for task in (SpeakerTask(), EnhancementTask(), SeparationTask(),
                                                        AVEnhancementTask(), FramesTask())}


def get_task(name: str) -> Task:
    """The task called ``name``; ``ValueError`` listing the names otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


__all__ = ["AVEnhancementOptions", "AVEnhancementTask", "AudioOptions", "EnhancementOptions", "EnhancementTask",
           "FramesOptions", "FramesTask", "Problem", "SeparationOptions", "SeparationTask", "SpeakerOptions",
           "SpeakerTask", "TASKS", "Task",
           "audio", "av_enhancement", "default_stft", "enhancement", "explain_in_segments", "frames", "get_task",
           "separation", "speaker", "stft_for"]
