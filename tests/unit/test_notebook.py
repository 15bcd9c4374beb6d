"""The notebook display of an explanation (``Explanation._repr_html_``, ``to_html``; ``avxai.notebook``): the page
holds the figure, the scores and players whose embedded media decode back to the explanation's own audio and
video; the size limit leaves media out with a note; ``to_html`` writes one complete file that parses."""

import base64
import html.parser
import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from avxai import AudioVisual, FaceVideo, OcclusionConfig, Scorer, Spectrogram, occlusion
from avxai.io import read_video
from avxai.notebook import explanation_html
from toys.models import RegionEnergy, tone_in_noise

VOID = {"meta", "img", "br", "hr", "input", "link", "source"}


class First(Scorer):
    units = "a.u."

    def __call__(self, output):
        return output[:, 0]


class Page(html.parser.HTMLParser):
    """The tags of a page: every element closed in order (else ``AssertionError``), sources and captions kept."""

    def __init__(self, text: str):
        super().__init__()
        self.stack, self.sources, self.captions, self.notes = [], [], [], []
        self._in = None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("img", "audio", "video"):
            self.sources.append((tag, attrs.get("src", "")))
        if tag == "figcaption" or attrs.get("class") == "avxai-note":
            self._in = tag if tag == "figcaption" else "note"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        self._in = None

    def handle_data(self, data):
        if self._in == "figcaption":
            self.captions.append(data)
        elif self._in == "note":
            self.notes.append(data)


def payload(src: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert src.startswith(prefix), src[:40]
    return base64.b64decode(src[len(prefix):])


@pytest.fixture(scope="module")
def audio_explanation():
    wav = tone_in_noise(seconds=0.5)
    mod = Spectrogram(wav, 16000, n_fft=256, hop_length=64)
    return wav, occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(8, 8), stride=(8, 8), progress=False))


def test_page_shows_the_figure_the_scores_and_players_of_the_explanations_audio(audio_explanation):
    wav, expl = audio_explanation
    figures_before = plt.get_fignums()
    page = Page(expl._repr_html_())
    assert plt.get_fignums() == figures_before  # the figure is closed: a notebook does not show it twice
    kinds = [tag for tag, _ in page.sources]
    assert kinds == ["img", "audio", "audio", "audio"]
    assert payload(page.sources[0][1], "image/png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.captions == ["original", "preserved", "deleted"]
    decoded = [sf.read(io.BytesIO(payload(src, "audio/wav")), dtype="float32") for _, src in page.sources[1:]]
    assert all(rate == 16000 for _, rate in decoded)
    for (data, _), name in zip(decoded, page.captions):
        expected = expl.media[name][1][0, 0].numpy()
        scale = max(1.0, float(np.abs(expected).max()) / 0.99)  # a perturbed input above full scale is scaled
        assert np.allclose(data, expected / scale, atol=2 / 32768), name  # 16-bit PCM
    assert not np.allclose(decoded[0][0], decoded[2][0])  # the deleted audio differs from the original
    text = expl._repr_html_()
    for name, value in expl.scores.items():  # every score, with its value as the page prints it
        assert f"<th>{name}</th>" in text and f"{float(value.flatten()[0]):.4g}" in text
    assert not page.notes  # nothing left out under the default limit


def test_the_size_limit_leaves_media_out_and_says_so(audio_explanation):
    _, expl = audio_explanation
    one_player = expl.media["original"][1][0].numel() * 2 + 44  # a 16-bit WAV of one medium
    page = Page(explanation_html(expl, max_media_bytes=one_player, figure=False))
    assert [tag for tag, _ in page.sources] == ["audio"] and page.captions == ["original"]
    note = " ".join(page.notes)
    assert "preserved (audio" in note and "deleted (audio" in note and "original" not in note
    assert "max_media_bytes" in note and "save" in note  # how to get them
    page = Page(explanation_html(expl, max_media_bytes=0, figure=False))
    assert page.sources == [] and all(n in " ".join(page.notes) for n in ("original", "preserved", "deleted"))
    with pytest.raises(ValueError, match="max_media_bytes"):
        explanation_html(expl, max_media_bytes=-1)


def test_to_html_writes_one_complete_file_that_parses(audio_explanation, tmp_path):
    _, expl = audio_explanation
    path = expl.to_html(tmp_path / "pages" / "expl.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>avxai explanation: occlusion</title>" in text
    page = Page(text)
    assert [tag for tag, _ in page.sources] == ["img", "audio", "audio", "audio"]
    assert all(src.startswith("data:") for _, src in page.sources)  # one file: nothing refers outside it
    with pytest.raises(ValueError, match="is a directory"):
        expl.to_html(tmp_path)
    with pytest.raises(ValueError, match="outside the explanation's batch of 1"):
        expl.to_html(tmp_path / "x.html", index=1)


def test_a_batch_shows_one_input_and_says_which():
    wav = tone_in_noise(seconds=0.25, batch=2)
    mod = Spectrogram(wav, 16000, n_fft=256, hop_length=64)
    expl = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(window=(16, 8), stride=(16, 8), progress=False))
    text = explanation_html(expl, index=1, figure=False)
    page = Page(text)
    first, second = (f"{float(v):.4g}" for v in expl.scores["unmasked"])
    assert first != second and f"<th>unmasked</th><td>{second}</td>" in text  # input 2's score
    (data, _), = [sf.read(io.BytesIO(payload(src, "audio/wav")), dtype="float32")
                  for (_, src), name in zip(page.sources, page.captions) if name == "original"]
    assert np.allclose(data, wav[1, 0].numpy(), atol=2 / 32768)  # input 2's audio, not input 1's
    assert any("Only input 2 of 2" in n for n in page.notes)


SR, FPS, T, S = 8000, 25.0, 6, 16


class ToyAV(nn.Module):
    """Logit 0 = mean brightness of the lower half of the face crops + mean waveform energy; logit 1 = 0."""

    sample_rate = SR

    def forward(self, pair):
        waveform, video = pair
        score = video[:, :, :, S // 2:].mean(dim=(1, 2, 3, 4)) + waveform.pow(2).mean(dim=(1, 2))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_an_audio_visual_page_has_video_players_that_decode_to_the_frames(tmp_path):
    ramp = torch.linspace(0.1, 0.9, S)  # smooth frames (h264 keeps them), brighter each frame, one tint per channel
    frames = torch.stack([torch.stack([(ramp[:, None] * ramp[None, :] * (0.6 + 0.05 * i) + 0.1 * c).clamp(0, 1)
                                       for c in range(3)]) for i in range(T)]).unsqueeze(0)
    t = torch.arange(int(T / FPS * SR)) / SR
    wav = (0.3 * torch.sin(2 * math.pi * 1000 * t)).reshape(1, 1, -1)
    av = AudioVisual(Spectrogram(wav, SR, n_fft=64, hop_length=32, perturbation="zero"),
                     FaceVideo(frames, FPS, perturbation="zero"))
    expl = occlusion(ToyAV(), av, First(), OcclusionConfig(window=(33, 12, 3, 8, 8), stride=(33, 12, 3, 8, 8),
                                                            progress=False))
    page = Page(explanation_html(expl, figure=False))
    players = {name: (tag, src) for (tag, src), name in zip(page.sources, page.captions)}
    assert sorted(players) == sorted(f"{m}_{k}" for m in ("original", "preserved", "deleted")
                                     for k in ("audio", "video"))
    assert all(players[f"{m}_video"][0] == "video" for m in ("original", "preserved", "deleted"))
    clip_path = tmp_path / "original.mp4"
    clip_path.write_bytes(payload(players["original_video"][1], "video/mp4"))
    clip = read_video(clip_path)
    assert clip.frames.shape[0] == T and tuple(clip.frames.shape[1:3]) == (S, S)
    expected = frames[0].permute(0, 2, 3, 1) * 255
    assert (clip.frames.float() - expected).abs().mean() < 6  # h264 (crf 23, yuv420p): close, not exact
    means = clip.frames.float().mean(dim=(1, 2, 3))
    assert bool((means[1:] > means[:-1]).all())  # the frames in their order
