"""Make avxai/assets/real/: a few seconds of two real talkers from Debian's codec2-examples package (LGPL-2.1).

    python scripts/make_real_speech.py                      # downloads codec2-examples with apt-get (Debian/Ubuntu)
    python scripts/make_real_speech.py --codec2 /tmp/codec2 # a folder where codec2-examples_*.deb was extracted

The source is ``/usr/share/codec2/raw/hts.raw`` of codec2-examples 1.0.5-1 (David Rowe's Codec 2 test speech:
24 s of 16-bit little-endian mono PCM at 8 kHz, four 6 s clips of two sentences each: a male talker in clips 1
and 3, a female talker in clips 2 and 4). Talker A is the female, talker B the male. The script

1. reads the file and checks its SHA-256 (so that the output is the same everywhere),
2. resamples it to 16 kHz with ``torchaudio.functional.resample`` (Kaiser-windowed sinc, width 64: the
   band-limited resampler of librosa's ``kaiser_best``); the recording stays band-limited to 4 kHz,
3. cuts sentences at fixed times (found from the 50 ms energy envelope; the pauses between sentences removed),
   with 10 ms raised-cosine fades, and scales each cut to an RMS of -26 dBFS,
4. writes ``aba.wav`` (A's first sentence of clip 2, B's first sentence of clip 1, A's second sentence of clip 2),
   ``aba_segments.json`` (the three turns, in seconds), ``enroll_A.wav`` (A's two sentences of clip 4: other
   words than in aba.wav) and ``enroll_B.wav`` (B's first sentence of clip 3), all 16 kHz mono 16-bit PCM,
5. writes ``bab.wav`` (B's first sentence of clip 1, A's first sentence of clip 2, B's second sentence of clip 1)
   and ``bab_segments.json`` the same way (target B, enrollment ``enroll_B.wav``): with ``aba.wav`` every
   sentence of the two talkers' turns is bundled once in each order (``avxai.data.real_speech`` builds from them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torchaudio.functional import resample

SOURCE = "usr/share/codec2/raw/hts.raw"
SOURCE_SHA256 = "43cd36174591b0702cd7a33b0e46d6fe2fc5f65205a8e5c05d8d0dd886d6c712"
SOURCE_RATE = 8000
RATE = 16000
CLIP_S = 6.0
LEVEL_DBFS = -26.0
FADE_S = 0.01
#: (clip index 0-3, start s, end s) inside a 6 s clip of hts.raw
A1, A2 = (1, 0.20, 2.55), (1, 3.20, 5.65)
B1, B2 = (0, 0.20, 2.55), (0, 3.10, 5.40)
ENROLL_A = [(3, 0.20, 2.45), (3, 3.20, 5.65)]
ENROLL_B = [(2, 0.20, 2.80)]
OUT = Path(__file__).resolve().parent.parent / "avxai" / "assets" / "real"


def extract_codec2(folder: Path) -> Path:
    """``apt-get download codec2-examples`` and ``dpkg -x`` it into ``folder``; the extracted root."""
    subprocess.run(["apt-get", "download", "codec2-examples"], cwd=folder, check=True)
    deb = next(folder.glob("codec2-examples_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(folder / "root")], check=True)
    return folder / "root"


def read_source(root: Path) -> torch.Tensor:
    """hts.raw at 16 kHz, float in [-1, 1]. Shape: ``(time,)``."""
    path = root / SOURCE
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise ValueError(f"{path} has SHA-256 {digest}, not the one of codec2-examples 1.0.5 ({SOURCE_SHA256})")
    pcm = torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
    return resample(pcm, SOURCE_RATE, RATE, lowpass_filter_width=64, rolloff=0.9475,
                    resampling_method="sinc_interp_kaiser", beta=14.769656459379492)


def cut(speech: torch.Tensor, clip: int, start: float, end: float) -> torch.Tensor:
    """One sentence, faded in and out, at -26 dBFS RMS. Shape: ``(time,)``."""
    offset = clip * CLIP_S
    piece = speech[round((offset + start) * RATE):round((offset + end) * RATE)].clone()
    n = round(FADE_S * RATE)
    fade = 0.5 - 0.5 * torch.cos(torch.linspace(0, torch.pi, n))
    piece[:n] *= fade
    piece[-n:] *= fade.flip(0)
    rms = piece.pow(2).mean().sqrt()
    return piece * (10 ** (LEVEL_DBFS / 20) / rms)


def write(path: Path, wav: torch.Tensor) -> None:
    if wav.abs().max() >= 1:
        raise ValueError(f"{path.name} would clip (peak {wav.abs().max():.3f}); lower LEVEL_DBFS")
    sf.write(path, wav.numpy(), RATE, subtype="PCM_16")
    print(f"wrote {path} ({wav.numel() / RATE:.2f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec2", type=Path, help="folder where codec2-examples_*.deb was extracted (dpkg -x); "
                                                   "default: download it with apt-get")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: avxai/assets/real)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        speech = read_source(args.codec2 or extract_codec2(Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    source = "codec2-examples 1.0.5-1 (Debian), /usr/share/codec2/raw/hts.raw, LGPL-2.1, (c) 2007-2019 David Rowe"
    talkers = {"A": {"talker": "female (clips 2 and 4 of hts.raw)", "cuts": {"1": A1, "2": A2}},
               "B": {"talker": "male (clips 1 and 3 of hts.raw)", "cuts": {"1": B1, "2": B2}}}
    for name, order, target in (("aba", [("A", A1), ("B", B1), ("A", A2)], "A"),
                                ("bab", [("B", B1), ("A", A1), ("B", B2)], "B")):
        turns = [(label, cut(speech, *where)) for label, where in order]
        segments, t = [], 0.0
        for label, piece in turns:
            segments.append({"start_s": round(t, 4), "end_s": round(t + piece.numel() / RATE, 4), "label": label})
            t += piece.numel() / RATE
        write(args.out / f"{name}.wav", torch.cat([piece for _, piece in turns]))
        used = {label: [list(where) for lab, where in order if lab == label] for label in "AB"}
        doc = {"segments": segments, "metadata": {
            "sample_rate": RATE, "target_label": target, "enroll": f"enroll_{target}.wav", "source": source,
            **{label: {"talker": talkers[label]["talker"], "clip_times_s": used[label]} for label in "AB"},
            "made_by": "scripts/make_real_speech.py"}}
        (args.out / f"{name}_segments.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.out / f'{name}_segments.json'}")
    write(args.out / "enroll_A.wav", torch.cat([cut(speech, *part) for part in ENROLL_A]))
    write(args.out / "enroll_B.wav", torch.cat([cut(speech, *part) for part in ENROLL_B]))


if __name__ == "__main__":
    main()
