# %% [markdown]
# # avxai tutorial: explain a speaker model, compare two methods, draw a paper figure
#
# This file is a notebook in percent format: open it in Jupyter (with jupytext), VS Code or Spyder and run it
# cell by cell, or run it as a script (`python docs/tutorial.py`), which writes everything to `avxai-tutorial/`.
# It needs only `pip install avxai`; the part on a real pretrained model needs `pip install avxai[resemblyzer]`
# and is skipped without it. Nothing is downloaded.
#
# Steps:
# 1. load a model (the bundled speaker model; your own `torch.nn.Module` works the same way through `avxai.wrap`),
# 2. explain one utterance with two methods, occlusion and extremal perturbation,
# 3. compare them with metrics: how much evidence lies in the target speaker's turns, deletion / insertion curves,
# 4. draw a paper figure (vector PDF + 300-dpi PNG),
# 5. the same on a real pretrained model (Resemblyzer) and real speech.

# %%
import json
import os
from pathlib import Path

import torch

import avxai
from avxai.viz.curves import plot_faithfulness_curves
from avxai.viz.style import paper_style, save_figure

#: small settings (coarse occlusion windows, few extremal iterations, short curves) so that the whole tutorial
#: runs in seconds; tests/e2e/test_tutorial.py sets AVXAI_TUTORIAL_SMALL=1. Unset, it uses the demo's settings.
SMALL = os.environ.get("AVXAI_TUTORIAL_SMALL") == "1"
OUT = Path(os.environ.get("AVXAI_TUTORIAL_OUT", "avxai-tutorial"))
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
print("avxai", avxai.__version__, "- small settings" if SMALL else "- full settings")

# %% [markdown]
# ## 1. A model and an input
#
# `avxai.load_model("speakernet")` loads the bundled speaker-identification model (16 generated speakers; a
# checkpoint that ships inside the package). Your own model: `avxai.wrap(my_module, sample_rate=16000)` makes
# any `torch.nn.Module` that takes a waveform `(batch, channels, time)` one that avxai explains (see
# `help(avxai.wrap)` for models on features, with several outputs, or returning embeddings).
#
# The input is the bundled A-B-A utterance: speaker A (class 0) for one second, then B, then A again. Its turns
# are labelled, so we know where the evidence for A should lie.

# %%
model = avxai.load_model("speakernet")
folder = avxai.ASSETS_DIR / "speaker"
wav, sr = avxai.load_audio(folder / "aba.wav", sample_rate=model.sample_rate)  # (1, 1, 48000) at 16 kHz
segments = json.loads((folder / "aba_segments.json").read_text())["segments"]  # [{start_s, end_s, label}, ...]

# the grid avxai masks: the STFT magnitude, 257 frequency bins x 376 frames (31.25 Hz x 8 ms per cell)
spectrogram = avxai.Spectrogram(wav, sr, n_fft=512, hop_length=128)
# what we explain: speaker A's log-probability (occluding B's speech raises it, so B's turn reads as negative)
scorer = avxai.ClassLogProbability(0)
print("grid", spectrogram.grid_shape, "- segments", [(s["label"], s["start_s"], s["end_s"]) for s in segments])

# %% [markdown]
# ## 2. Two explanations
#
# Occlusion slides a window over the grid and records how much the score drops when the window is removed.
# Extremal perturbation optimises a smooth mask that keeps a given area of the grid and the score as high as
# possible. Every method is a top-level function `avxai.<method>(model, modality, scorer, config)`; the
# registered names are in `avxai.METHODS`.

# %%
occlusion = avxai.occlusion(model, spectrogram, scorer, avxai.OcclusionConfig(
    window=(64, 24) if SMALL else (32, 12), stride=(64, 24) if SMALL else (16, 6), progress=False))
extremal = avxai.extremal(model, spectrogram, scorer, avxai.ExtremalConfig(
    areas=(0.2,), iterations=20 if SMALL else 300))
for expl in (occlusion, extremal):
    expl.metadata["segments"] = segments  # figures mark the turns; segment_mass reads them
print({name: round(float(v.flatten()[0]), 3) for name, v in occlusion.scores.items()})

# %% [markdown]
# In a notebook, an explanation shows itself: its figure, its scores, and players for the original audio, the
# audio with only the most important cells kept ("preserved") and with them removed ("deleted"). The same page
# as one file: `expl.to_html(path)`; everything (JSON, arrays, figure, WAVs): `expl.save(folder)`.

# %%
occlusion.to_html(OUT / "occlusion.html")
extremal.save(OUT / "extremal")
occlusion  # the last expression of a notebook cell is displayed

# %% [markdown]
# ## 3. Compare the two methods
#
# *Segment mass*: the share of the positive evidence (occlusion) or of the mask (extremal) that lies in A's turns.
# A's turns hold two thirds of the frames, so a map that ignores who speaks scores about 0.67.
#
# *Deletion / insertion*: remove (or restore) the cells in the order the explanation ranks them and follow the
# score; a faithful explanation makes it fall fast (low deletion AUC) and rise fast (high insertion AUC).

# %%
uniform = float(avxai.metrics.frames_in_segments(occlusion.coordinates["time"], segments, "A").double().mean())
print(f"uniform map: {uniform:.3f} of the frames lie in A's turns")
print("occlusion, positive evidence in A's turns:", round(avxai.segment_mass(occlusion)["A"]["positive"][0], 3))
print("extremal, mask mass in A's turns (area 0.2):", round(avxai.segment_mass(extremal)["A"]["masks"][0][0], 3))

steps = 5 if SMALL else 20
curves = {"deletion": {}, "insertion": {}}
for name, expl in (("occlusion", occlusion), ("extremal", extremal)):
    curves["deletion"][name] = avxai.deletion_curve(model, spectrogram, scorer, expl, steps=steps)
    curves["insertion"][name] = avxai.insertion_curve(model, spectrogram, scorer, expl, steps=steps)
    print(f"{name}: deletion AUC {curves['deletion'][name].auc.item():.3f} (lower is better), "
          f"insertion AUC {curves['insertion'][name].auc.item():.3f} (higher is better)")

# %% [markdown]
# ## 4. A paper figure
#
# `paper_style()` sets the fonts and line widths of a paper (7-9 pt, embedded TrueType fonts) and `save_figure`
# writes a vector PDF and a 300-dpi PNG. In the repository, `recipes/paper_figures/make_figures.py` draws the
# whole set of figure kinds from saved explanations.

# %%
with paper_style():
    written = save_figure(plot_faithfulness_curves(curves["deletion"], curves["insertion"],
                                                   title="speaker A on A-B-A"), OUT / "curves")
    written += save_figure(occlusion.plot(), OUT / "occlusion_map")
print("wrote", ", ".join(str(p) for p in written))

# %% [markdown]
# ## 5. A real pretrained model on real speech (needs `pip install avxai[resemblyzer]`)
#
# Resemblyzer's GE2E speaker encoder (its pretrained weights ship in its wheel) on the bundled real recordings:
# a female talker (A), a male talker (B), then A again (Debian's codec2-examples, LGPL-2.1). avxai explains the
# cosine between the utterance's embedding and the embedding of two other sentences by A. The 3-layer LSTM is
# slow on a CPU, so the occlusion windows are coarse: full band x 200 ms (full band x 600 ms in small settings).

# %%
try:
    import resemblyzer  # noqa: F401  (optional dependency: only to know whether the extra is installed)
except ImportError:
    resemblyzer = None
    print("Resemblyzer is not installed: pip install avxai[resemblyzer] to run this part")

if resemblyzer is not None:
    encoder = avxai.load_model("resemblyzer")
    real = avxai.ASSETS_DIR / "real"
    speech, rate = avxai.load_audio(real / "aba.wav", sample_rate=encoder.sample_rate)
    enrollment, _ = avxai.load_audio(real / "enroll_A.wav", sample_rate=encoder.sample_rate)
    if SMALL:
        speech = speech[..., : 3 * rate]  # the first 3 s: A's turn and the start of B's
    real_spec = avxai.Spectrogram(speech, rate, n_fft=512, hop_length=128)
    cosine = avxai.SpeakerCosine(encoder, enrollment, sample_rate=rate)
    frames = 75 if SMALL else 25
    real_expl = avxai.occlusion(encoder, real_spec, cosine, avxai.OcclusionConfig(
        window=(257, frames), stride=(257, frames), progress=False))
    real_expl.metadata["segments"] = json.loads((real / "aba_segments.json").read_text())["segments"]
    share = avxai.segment_mass(real_expl)["A"]["positive"][0]
    print(f"Resemblyzer: cosine to A's enrollment {real_expl.scores['unmasked'].item():.3f}; "
          f"{100 * share:.1f}% of the positive evidence lies in A's turns")
    real_expl.to_html(OUT / "resemblyzer.html")
