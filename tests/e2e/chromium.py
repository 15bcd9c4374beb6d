"""A small Chrome DevTools Protocol client for tests: open a local page in headless Chromium, collect the
console errors, uncaught exceptions and failed loads, evaluate JavaScript, and take a screenshot.

Uses Debian's ``chromium`` (no browser download) and ``websocket-client`` (the dev extra).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessChromium:
    """``with HeadlessChromium(profile_dir) as browser: browser.open(path); browser.evaluate(js)``."""

    def __init__(self, profile: Path, executable: str | None = None, timeout_s: float = 60.0):
        self.profile = Path(profile)
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise FileNotFoundError("no chromium on PATH; install it with scripts/install_test_deps.sh")
        self.timeout_s = timeout_s
        self.problems: list[str] = []  # console errors, exceptions, failed loads
        self._id = 0

    # -- process and connection ---------------------------------------------------------------
    def __enter__(self) -> "HeadlessChromium":
        import websocket

        self.profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([self.executable, *FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = self._wait_for_port()
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout_s,
                                                  suppress_origin=True)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.ws.close()
        except Exception:  # the browser may be gone already; stopping it below is what matters
            pass
        self._stop()

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _wait_for_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.executable} exited with code {self.proc.returncode} while starting")
            if marker.exists():
                text = marker.read_text().split()
                if text:
                    return int(text[0])
            time.sleep(0.1)
        raise TimeoutError(f"{self.executable} did not open its DevTools port within {self.timeout_s} s")

    # -- protocol -----------------------------------------------------------------------------
    def _record(self, message: dict) -> None:
        method, p = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.problems.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                        for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.problems.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.problems.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            self.problems.append(f"load failed: {p.get('errorText')} ({p.get('type')})")

    def _next(self) -> dict:
        return json.loads(self.ws.recv())

    def send(self, method: str, **params: Any) -> dict:
        """Call a protocol method and return its result (events that arrive meanwhile are recorded)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = self._next()
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._record(message)

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = self._next()
            self._record(message)
            if message.get("method") == event:
                return message.get("params", {})
        raise TimeoutError(f"no {event} within {self.timeout_s} s")

    # -- what tests use -----------------------------------------------------------------------
    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event."""
        result = self.send("Page.navigate", url=Path(path).resolve().as_uri())
        if result.get("errorText"):
            raise RuntimeError(f"cannot open {path}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript (promises awaited) and return its JSON value."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1200) -> Path:
        """Save a PNG of the whole page (``width`` CSS pixels wide)."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=min(height, 16000),
                  deviceScaleFactor=1, mobile=False)
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
