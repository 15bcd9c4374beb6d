"""The audit report in a real headless browser (Debian's chromium, via the DevTools protocol): it renders
without console errors, every image and audio element loads, a click on a column header sorts the ranked
trials, a filter menu hides the other rows, and a screenshot is saved."""

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
                                                   width: img.naturalWidth, shown: img.width}));
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


#: the header cells of the ranked-trials table, and the rows' sort values of one column (shown rows only)
COLUMN = """
(name => {
  const table = document.getElementById('ranking');
  const col = [...table.tHead.rows[0].cells].findIndex(th => th.textContent.trim() === name);
  const header = table.tHead.rows[0].cells[col];
  header.scrollIntoView({block: 'center'});
  const box = header.getBoundingClientRect();
  return {col, state: header.getAttribute('aria-sort'), x: box.left + box.width / 2, y: box.top + box.height / 2,
          values: [...table.tBodies[0].rows].filter(r => !r.hidden).map(r => r.cells[col].getAttribute('data-v'))};
})
"""


def _click(browser, x: float, y: float) -> None:
    """A real mouse click (press and release of the left button) at viewport coordinates."""
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def _column(browser, name: str) -> dict:
    return browser.evaluate(f"{COLUMN}({name!r})")


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
        # a click on the score header sorts the ranked trials by score, largest first; a second click reverses
        before = _column(browser, "score")
        _click(browser, before["x"], before["y"])
        first = _column(browser, "score")
        _click(browser, first["x"], first["y"])
        second = _column(browser, "score")
        by_trial = _column(browser, "trial")
        _click(browser, by_trial["x"], by_trial["y"])
        by_trial = _column(browser, "trial")
        # the label menu keeps the target trials only
        shown = browser.evaluate("""(() => {
          const menu = [...document.querySelectorAll('.filters[data-table="ranking"] select')]
            .find(m => m.parentNode.textContent.trim().startsWith('label'));
          menu.value = 'target';
          menu.dispatchEvent(new Event('change', {bubbles: true}));
          const rows = [...document.getElementById('ranking').tBodies[0].rows].filter(r => !r.hidden);
          return {labels: rows.map(r => r.cells[4].textContent),
                  note: document.querySelector('.filters[data-table="ranking"] .shown').textContent};
        })()""")
        shot = browser.screenshot(tmp_path / "report.png")
        problems = list(browser.problems)
    assert problems == []
    scores = [float(v) for v in first["values"]]
    assert before["state"] == "none" and first["state"] == "descending" and second["state"] == "ascending"
    assert scores == sorted(scores, reverse=True) and sorted(before["values"]) == sorted(first["values"])
    assert [float(v) for v in second["values"]] == sorted(scores)
    assert by_trial["state"] == "ascending" and by_trial["values"] == sorted(by_trial["values"])
    targets = sum(t["label"] == "target" for t in summary["trials"])
    assert shown["labels"] == ["target"] * targets and shown["note"] == f"{targets} of 3 rows shown"
    assert state["title"].startswith("Speaker-verification audit")
    assert state["sections"] == 4  # one per trial, the failed one included
    # two audit-level figures + one figure per finished trial, at twice the size they are shown at (2x screens);
    # four players per finished trial (enrollment; test: original, mask kept, mask removed)
    assert len(state["images"]) == 2 + 3 and all(i["ok"] for i in state["images"]), state["images"]
    assert all(i["width"] == 2 * i["shown"] for i in state["images"]), state["images"]
    assert len(state["audio"]) == 4 * 3 and all(a["ok"] for a in state["audio"]), state["audio"]
    assert all(a["duration"] > 0.5 for a in state["audio"])
    assert sum("/enroll.wav" in a["src"] for a in state["audio"]) == 3
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (out / "report.html").read_text()
    assert "odd &lt;&amp;&gt; text" in page and "odd <&> text" not in page  # trial text is escaped
    # each finished trial links its arrays, and the link leads to the file
    assert page.count('arrays.npz"') == 2 * 3 and all((out / "trials" / t / "arrays.npz").is_file()
                                                        for t in ("single-000", "aba-000", "padded-000"))
    assert "http://" not in page and "https://" not in page  # nothing from the network
