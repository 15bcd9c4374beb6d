"""The main job on bundled defaults: explain the reference speaker model on the bundled A-B-A utterance."""

from __future__ import annotations

from pathlib import Path

from avxai.explanation import Explanation
from avxai.io.audio import load_audio
from avxai.methods import get_method
from avxai.metrics.localisation import segment_mass
from avxai.modalities.spectrogram import Spectrogram
from avxai.scorers.classification import ClassLogProbability
from avxai.tasks.base import read_segments

#: the demo's occlusion: 32 frequency bins x 12 frames (1 kHz x 96 ms), half overlap
DEMO_WINDOW = (32, 12)
DEMO_STRIDE = (16, 6)


def speaker_assets() -> Path:
    """The folder of the bundled speaker model and utterances (``assets/speaker``)."""
    from avxai.models.checkpoint import ASSETS_DIR

    return ASSETS_DIR / "speaker"


def run_demo(out: Path = Path("avxai-out"), method: str = "occlusion", progress: bool = True,
             window: tuple[int, int] = DEMO_WINDOW, stride: tuple[int, int] = DEMO_STRIDE) -> Explanation:
    """Explain speaker A's log-probability on ``assets/speaker/aba.wav`` and save everything to ``out``.

    The log-probability (log-softmax) rather than the raw logit: occluding B's speech then *raises* the
    score (B's turn is evidence against A), so the map separates A's evidence from B's.

    ``window`` / ``stride`` are the occlusion patch and step in (frequency bins, frames) of the 512-point
    STFT with hop 128 (31.25 Hz x 8 ms per cell); other methods use their default configs.
    """
    from avxai.data.mixtures import load_segments
    from avxai.models.checkpoint import load_speaker_model

    folder = speaker_assets()
    model = load_speaker_model()
    wav, rate = load_audio(folder / "aba.wav", sample_rate=model.sample_rate)
    _, info = load_segments(folder / "aba_segments.json", with_metadata=True)
    target = info.get("target_class")
    if target is None:
        raise ValueError(f"{folder / 'aba_segments.json'} names no 'target_class'; rerun recipes/speaker/train.py")
    modality = Spectrogram(wav, rate, n_fft=512, hop_length=128)
    m = get_method(method)
    fields = {"progress": progress}
    if method == "occlusion":
        fields.update(window=tuple(window), stride=tuple(stride), batch_size=64)
    config = m.config_class(**{k: v for k, v in fields.items() if k in m.config_class.__dataclass_fields__})
    explanation = m(model, modality, ClassLogProbability(int(target)), config)
    explanation.metadata.update(task="speaker", input=str(folder / "aba.wav"),
                                segments=read_segments(folder / "aba_segments.json"), target_label="A")
    shares = segment_mass(explanation)  # per label: share of the positive attribution (evidence for A) inside
    explanation.metadata["segment_mass"] = shares
    if "positive" in shares.get("A", {}):
        share = shares["A"]["positive"][0]
        explanation.metadata["positive_mass_in_A"] = round(share, 4)
        print(f"speaker A (class {target}): log-probability {explanation.scores['unmasked'].item():.3f}; "
              f"{100 * share:.1f}% of the positive evidence lies in A's segments")
    explanation.save(out)
    print(f"wrote {', '.join(sorted(p.name for p in Path(out).iterdir()))} to {out}/ "
          f"in {explanation.metadata['seconds']:.1f} s")
    return explanation
