"""The main job on bundled defaults: explain a speaker model on an A-B-A utterance (speaker A, then B, then A).

``avxai demo`` (``model="speakernet"``) explains the bundled reference speaker model on the bundled generated
utterance ``avxai/assets/speaker/aba.wav``. ``avxai demo --model resemblyzer`` (``pip install avxai[resemblyzer]``)
explains a real pretrained speaker encoder, Resemblyzer's GE2E ``VoiceEncoder``, on real recordings
(``avxai/assets/real/``: two talkers of Debian's codec2-examples, see ``avxai/assets/README.md``): the verification cosine
between the A-B-A utterance and A's enrollment.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from avxai.config import build_config
from avxai.data.mixtures import load_segments
from avxai.explanation import Explanation
from avxai.methods import get_method
from avxai.metrics.localisation import frames_in_segments, segment_mass
from avxai.models.checkpoint import ASSETS_DIR
from avxai.models.registry import load_model
from avxai.tasks.speaker import SpeakerOptions, build

#: the demo's occlusion: 32 frequency bins x 12 frames (1 kHz x 96 ms), half overlap
DEMO_WINDOW = (32, 12)
DEMO_STRIDE = (16, 6)
#: Resemblyzer's occlusion: all 257 bins x 25 frames (full band x 200 ms), side by side. Coarse because the
#: 3-layer LSTM runs ten 1.6 s partial utterances per input: the demo stays about ten seconds on two CPU cores
RESEMBLYZER_WINDOW = (257, 25)
RESEMBLYZER_STRIDE = (257, 25)
#: the models ``avxai demo --model`` takes
DEMO_MODELS = ("speakernet", "resemblyzer")


def speaker_assets() -> Path:
    """The folder of the bundled speaker model and utterances (``avxai/assets/speaker``)."""
    return ASSETS_DIR / "speaker"


def real_assets() -> Path:
    """The folder of the bundled real recordings (``avxai/assets/real``: aba.wav, its segments, enroll_A.wav)."""
    return ASSETS_DIR / "real"


def run_demo(out: Path = Path("avxai-out"), method: str = "occlusion", progress: bool = True,
             window: tuple[int, int] | None = None, stride: tuple[int, int] | None = None,
             model: str = "speakernet") -> Explanation:
    """Explain speaker A on an A-B-A utterance and save everything to ``out``.

    ``model="speakernet"``: speaker A's log-probability under the bundled model on ``avxai/assets/speaker/aba.wav``.
    The log-probability (log-softmax) rather than the raw logit: occluding B's speech then *raises* the
    score (B's turn is evidence against A), so the map separates A's evidence from B's.

    ``model="resemblyzer"``: the cosine between Resemblyzer's embeddings of ``avxai/assets/real/aba.wav`` and of A's
    enrollment ``avxai/assets/real/enroll_A.wav`` (real speech, pretrained weights). Needs ``pip install
    avxai[resemblyzer]`` (an ``ImportError`` naming it otherwise).

    ``window`` / ``stride`` are the occlusion patch and step in (frequency bins, frames) of the 512-point
    STFT with hop 128 (31.25 Hz x 8 ms per cell); default :data:`DEMO_WINDOW` / :data:`DEMO_STRIDE`
    (:data:`RESEMBLYZER_WINDOW` / :data:`RESEMBLYZER_STRIDE` for Resemblyzer); other methods use their
    default configs.
    """
    if model not in DEMO_MODELS:
        raise ValueError(f"the demo runs {' or '.join(DEMO_MODELS)}, got model {model!r}; explain any other model "
                         "with avxai explain --model SPEC")
    if model == "resemblyzer":
        default = (RESEMBLYZER_WINDOW, RESEMBLYZER_STRIDE)
        problem, what = _resemblyzer_problem()
    else:
        default = (DEMO_WINDOW, DEMO_STRIDE)
        problem, what = _speakernet_problem()
    m = get_method(method)
    fields = {f.name for f in dataclasses.fields(m.config_class)}
    values = {"progress": progress}
    if method == "occlusion":
        values.update(window=tuple(window or default[0]), stride=tuple(stride or default[1]), batch_size=64)
    config = build_config(m.config_class, values={k: v for k, v in values.items() if k in fields})
    explanation = m(problem.model, problem.modality, problem.scorer, config)
    explanation.metadata.update(task="speaker", input=problem.metadata["input"], segments=problem.metadata["segments"],
                                target_label="A", demo_model=model)
    shares = segment_mass(explanation)  # per label: share of the positive attribution (evidence for A) inside
    explanation.metadata["segment_mass"] = shares
    uniform = frames_in_segments(explanation.coordinates["time"], problem.metadata["segments"], "A")
    explanation.metadata["uniform_share_A"] = round(float(uniform.double().mean()), 4)
    if "positive" in shares.get("A", {}):
        share = shares["A"]["positive"][0]
        explanation.metadata["positive_mass_in_A"] = round(share, 4)
        print(f"{what} {explanation.scores['unmasked'].item():.3f}; {100 * share:.1f}% of the positive evidence "
              f"lies in A's segments (A's turns hold {100 * explanation.metadata['uniform_share_A']:.1f}% of the "
              "frames: the share of a uniform map)")
    explanation.save(out)
    print(f"wrote {', '.join(sorted(p.name for p in Path(out).iterdir()))} to {out}/ "
          f"in {explanation.metadata['seconds']:.1f} s")
    return explanation


def _speakernet_problem():
    folder = speaker_assets()
    model = load_model("speakernet")
    _, info = load_segments(folder / "aba_segments.json", with_metadata=True)
    target = info.get("target_class")
    if target is None:
        raise ValueError(f"{folder / 'aba_segments.json'} names no 'target_class'; rerun recipes/speaker/train.py")
    problem = build(model, SpeakerOptions(input=folder / "aba.wav", target=int(target), score="log-probability",
                                          segments=folder / "aba_segments.json", n_fft=512, hop_length=128))
    return problem, f"speaker A (class {target}): log-probability"


def _resemblyzer_problem():
    folder = real_assets()
    model = load_model(architecture="resemblyzer")  # ImportError naming pip install avxai[resemblyzer]
    problem = build(model, SpeakerOptions(input=folder / "aba.wav", enroll=folder / "enroll_A.wav",
                                          segments=folder / "aba_segments.json", n_fft=512, hop_length=128))
    return problem, ("Resemblyzer (pretrained GE2E encoder) on real speech (codec2-examples): cosine to A's "
                     "enrollment")
