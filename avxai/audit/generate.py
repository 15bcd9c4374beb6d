"""A trial list from generated speakers, with known answers: single-speaker, A-B-A and noisy / padded trials.

Conditions (each with as many target as non-target trials):

* ``single``: one clean utterance;
* ``aba``: the enrolled speaker A, an interfering talker B, A again (target segments = A's turns); the
  non-target trials are A-B-A mixtures of two other speakers;
* ``noisy``: speech parts separated by silences, white noise everywhere at ``snr_db`` (non-speech = noise);
* ``padded``: one clean utterance surrounded by long digital silence (non-speech = silence).

Every file is a 32-bit float WAV at ``sample_rate``; the CSV holds paths relative to itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from avxai.audit.trials import write_trials
from avxai.data.mixtures import build_aba, build_noisy_with_silence, pad_with_silence
from avxai.data.synthetic import SyntheticSpeaker
from avxai.io.audio import save_audio

__all__ = ["CONDITIONS", "build_trial_list"]

CONDITIONS = ("single", "aba", "noisy", "padded")


def build_trial_list(out_dir: "str | Path", trials_per_condition: Mapping[str, int] | int = 2, *,
                     speaker_ids: Sequence[int] = tuple(range(8)), speaker_seed: int = 0, sample_rate: int = 16000,
                     enroll_s: float = 3.0, test_s: float = 2.0, aba_durations: Sequence[float] = (0.8, 0.8, 0.8),
                     noisy_layout: Sequence[float] = (0.5, 0.8, 0.5, 0.8, 0.5), padded_s: tuple[float, float] = (1.0, 1.0),
                     snr_db: float = 10.0, seed: int = 0) -> Path:
    """Write ``out_dir/trials.csv`` and its audio (``enroll/``, ``test/``); return the CSV path.

    ``trials_per_condition``: trials per condition (an int for each of :data:`CONDITIONS`, or a mapping);
    half of them (rounded up) are target trials. Speakers are ``SyntheticSpeaker(i, speaker_seed)`` for
    ``i`` in ``speaker_ids``; target and interferer speakers rotate through them. Utterance seeds are drawn
    from ``seed`` and never repeat within the list.
    """
    counts = {c: int(trials_per_condition) for c in CONDITIONS} if isinstance(trials_per_condition, int) \
        else {c: int(n) for c, n in trials_per_condition.items()}
    unknown = sorted(set(counts) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; choose from {', '.join(CONDITIONS)}")
    if any(n < 0 for n in counts.values()) or not sum(counts.values()):
        raise ValueError(f"trials_per_condition must be >= 0 and not all 0, got {counts}")
    ids = [int(i) for i in speaker_ids]
    if len(ids) < 3:
        raise ValueError(f"need at least 3 speakers (target, interferer, impostor), got speaker_ids={ids}")
    out = Path(out_dir)
    (out / "enroll").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    speakers = {i: SyntheticSpeaker(i, speaker_seed) for i in ids}
    rng = np.random.default_rng([seed, 0xA0D17])
    # distinct utterance seeds: a few per trial (turns, noise) and one per enrollment; the first 10 000 are the
    # same for every list size, so a larger list keeps the trials of a smaller one
    needed = max(10_000, len(ids) + 8 * sum(counts.values()))
    if needed > 2**24:
        raise ValueError(f"{sum(counts.values())} trials need more distinct utterance seeds than the generator has; "
                         "build several lists with different seeds")
    seeds = iter(rng.permutation(2**24)[:needed].tolist())
    enroll_files = {}
    for i in ids:
        name = f"enroll/spk{i:03d}.wav"
        save_audio(out / name, speakers[i].utterance(enroll_s, sample_rate, seed=next(seeds)), sample_rate)
        enroll_files[i] = name
    rows = []
    turn = 0
    for condition in CONDITIONS:
        n = counts.get(condition, 0)
        for j in range(n):
            label = 1 if j < (n + 1) // 2 else 0
            spk = ids[turn % len(ids)]
            other = ids[(turn + 1) % len(ids)]
            third = ids[(turn + 2) % len(ids)]
            turn += 1
            name = f"test/{condition}_{j:03d}.wav"
            row = {"id": f"{condition}-{j:03d}", "condition": condition, "enroll": enroll_files[spk], "test": name,
                   "label": label, "target_segments": [], "interferer_segments": []}
            if condition == "single":
                voice = speakers[spk] if label else speakers[other]
                wav = voice.utterance(test_s, sample_rate, seed=next(seeds))
            elif condition == "aba":
                a, b = (spk, other) if label else (other, third)
                wav, segs = build_aba(speakers[a], speakers[b], aba_durations, sample_rate, seed=next(seeds))
                for seg in segs:
                    key = "target_segments" if (label and seg.label == "A") else "interferer_segments"
                    row[key].append((round(seg.start_s, 4), round(seg.end_s, 4)))
            elif condition == "noisy":
                voice = speakers[spk] if label else speakers[other]
                wav, segs = build_noisy_with_silence(voice, sample_rate, seed=next(seeds), layout=noisy_layout,
                                                     snr_db=snr_db)
                if label:
                    row["target_segments"] = [(round(s.start_s, 4), round(s.end_s, 4)) for s in segs]
            else:  # padded
                voice = speakers[spk] if label else speakers[other]
                speech = voice.utterance(test_s, sample_rate, seed=next(seeds))
                wav, seg = pad_with_silence(speech, sample_rate, padded_s[0], padded_s[1])
                if label:
                    row["target_segments"] = [(round(seg.start_s, 4), round(seg.end_s, 4))]
            save_audio(out / name, wav.reshape(1, -1), sample_rate)
            rows.append(row)
    return write_trials(out / "trials.csv", rows)
