"""The audit report in a real headless browser (Debian's chromium, via the DevTools protocol): it renders
without console errors, every image and audio element loads, and a screenshot is saved."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("websocket", reason="the browser test needs websocket-client (dev extra: pip install -e '.[dev]')")

from toys.audit import WINDOW_64, small_trial_list, tiny_checkpoint  # noqa: E402
from avxai.audit import AuditConfig, run_audit  # noqa: E402
from e2e.chromium import HeadlessChromium, find_chromium  # noqa: E402

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="no chromium on PATH: run scripts/install_test_deps.sh (make setup-test)")

CHECK_MEDIA = """
(async () => {
  const images = [...document.images].map(img => ({src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0,
                                                   width: img.naturalWidth}));
  const audio = await Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(resolve => {
    const done = ok => resolve({src: a.getAttribute('src'), ok, duration: a.duration,
                                error: a.error ? a.error.code : null});
    if (a.readyState >= 1) return done(true);
    a.addEventListener('loadedmetadata', () => done(true), {once: true});
    a.addEventListener('error', () => done(false), {once: true});
    setTimeout(() => done(a.readyState >= 1), 20000);
    a.load();
  })));
  return {images, audio, title: document.title, rows: document.querySelectorAll('tr').length,
          sections: document.querySelectorAll('section.trial').length};
})()
"""


def test_report_renders_with_every_image_and_audio_loaded(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "model")
    trials_csv = small_trial_list(tmp_path / "data", {"single": 1, "aba": 1, "padded": 1})
    with open(trials_csv, "a", newline="") as f:  # a failed trial is part of the page too
        csv.writer(f).writerow(["enroll/spk000.wav", "test/gone.wav", "0", "gone", "odd <&> text", "", ""])
    out = tmp_path / "audit"
    config = AuditConfig(method="occlusion", areas=(0.1, 0.2), method_options=WINDOW_64, curve_steps=4,
                         min_duration_s=0.3)
    summary = run_audit(trials_csv, out, config, model=ckpt, progress=False)
    assert summary["counts"]["ok"] == 3 and summary["counts"]["failed"] == 1

    with HeadlessChromium(tmp_path / "profile") as browser:
        browser.open(out / "report.html")
        state = browser.evaluate(CHECK_MEDIA)
        shot = browser.screenshot(tmp_path / "report.png")
        problems = list(browser.problems)
    assert problems == []
    assert state["title"].startswith("Speaker-verification audit")
    assert state["sections"] == 4  # one per trial, the failed one included
    # two audit-level figures + one figure per finished trial; three players per finished trial
    assert len(state["images"]) == 2 + 3 and all(i["ok"] for i in state["images"]), state["images"]
    assert len(state["audio"]) == 3 * 3 and all(a["ok"] for a in state["audio"]), state["audio"]
    assert all(a["duration"] > 0.5 for a in state["audio"])
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (out / "report.html").read_text()
    assert "odd &lt;&amp;&gt; text" in page and "odd <&> text" not in page  # trial text is escaped
