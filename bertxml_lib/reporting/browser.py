"""Reporting — open the results site in headless Chromium and check every page a reader can reach from the
index: broken links and images, JavaScript console errors, pages wider than the window; a full-page screenshot
of each page for review. Chromium is driven over the Chrome DevTools Protocol (one websocket, no browser
download): Debian's `chromium` package (`make browser`).

    python -m bertxml_lib.reporting.browser results/ci/site/index.html     # screenshots in site/screenshots/
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

INSTALL_HINT = ("headless Chromium is needed: `make browser` (as root: apt-get update && apt-get install -y "
                "chromium), or point BERTXML_CHROMIUM at a Chromium/Chrome binary")
#: Offline and quiet: no background connections (refused here anyway), no first-run or sync work.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0"]
MAX_SHOT_PX = 16000  # Chromium's largest capturable surface is about 16,384 px

PROBE = """(() => {
  const ids = new Set([...document.querySelectorAll('[id],[name]')].map(e => e.id || e.getAttribute('name')));
  return {
    title: document.title,
    brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    // The HTML spec tries a fragment as written, then percent-decoded (nbconvert writes encoded ids).
    brokenAnchors: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1))
                      .filter(h => h && !ids.has(h) && !ids.has(decodeURIComponent(h))),
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    height: document.documentElement.scrollHeight,
  };
})()"""


def find_chromium() -> str | None:
    """`$BERTXML_CHROMIUM`, else chromium / chromium-browser / google-chrome on the PATH."""
    env = os.environ.get("BERTXML_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class PageReport:
    path: str
    title: str = ""
    problems: list[str] = field(default_factory=list)
    screenshot: str = ""
    width: int = 0
    height: int = 0


class Browser:
    """One headless Chromium with one tab, driven over the DevTools protocol."""

    def __init__(self, executable: str, width: int = 1400, height: int = 900, timeout_s: float = 60.0):
        self.executable, self.width, self.height, self.timeout_s = executable, width, height, timeout_s
        self._id, self.events = 0, []

    def __enter__(self) -> Browser:
        import websocket

        self._profile = tempfile.mkdtemp(prefix="bertxml-chromium-")
        self._proc = subprocess.Popen([self.executable, *FLAGS, f"--user-data-dir={self._profile}",
                                       f"--window-size={self.width},{self.height}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = Path(self._profile) / "DevToolsActivePort", time.monotonic() + self.timeout_s
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"{self.executable} did not start a DevTools endpoint ({INSTALL_HINT})")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self._ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout_s,
                                               suppress_origin=True, max_size=None)
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                  session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_ws", None) is not None:
            self._ws.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Send one command; events received meanwhile are kept in `self.events`."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        self._ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _wait_event(self, name: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(e["method"] == name for e in self.events):
                return True
            self._ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = json.loads(self._ws.recv())
            except Exception:  # websocket timeout: loop checks the deadline
                continue
            finally:
                self._ws.settimeout(self.timeout_s)
            if "method" in msg:
                self.events.append(msg)
        return False

    def visit(self, url: str) -> tuple[dict, list[str]]:
        """Load `url`; returns the page probe (links, broken images, widths) and the console/network errors."""
        self.events = []
        self.send("Page.navigate", {"url": url})
        if not self._wait_event("Page.loadEventFired", self.timeout_s):
            return {}, [f"did not finish loading within {self.timeout_s:.0f} s"]
        self._wait_event("__settle__", 0.3)  # late console messages and image decodes
        probe = self.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True})["result"]["value"]
        return probe, console_errors(self.events)

    def screenshot(self, path: Path, height: int) -> None:
        h = max(self.height, min(int(height), MAX_SHOT_PX))
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                    "clip": {"x": 0, "y": 0, "width": self.width, "height": h, "scale": 1}})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


def console_errors(events: list[dict]) -> list[str]:
    """JavaScript exceptions, console.error/assert calls, error log entries and failed loads among `events`."""
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"JavaScript exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"console: {entry.get('text')} {entry.get('url', '')}".strip())
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"failed to load a resource: {p.get('errorText')}")
    return out


def check_site(index: str | Path, screenshots: str | Path | None = None, width: int = 1400, height: int = 900,
               executable: str | None = None) -> list[PageReport]:
    """Open `index` and every site page reachable from it; one report per page (empty `problems` = fine).

    A link is broken when it points into the site folder at a file that does not exist, or at an anchor the page
    lacks; links leaving the site folder are reported too (the site must stand alone). Pages are checked at
    `width` x `height`; a page is too wide when it scrolls sideways. Screenshots go to `screenshots` (one PNG per
    page, named after its path, and `report.json` listing every page with its problems)."""
    index = Path(index).resolve()
    root, executable = index.parent, executable or find_chromium()
    if not executable:
        raise FileNotFoundError(INSTALL_HINT)
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no such page (render the site first: run_all.py renders it after the notebooks)")
    queue, seen, reports = [index], {index}, []
    with Browser(executable, width, height) as browser:
        while queue:
            page = queue.pop(0)
            rel = page.relative_to(root).as_posix()
            report = PageReport(rel)
            probe, report.problems = browser.visit(page.as_uri())
            reports.append(report)
            if not probe:
                continue
            report.title, report.width, report.height = probe["title"], probe["scrollWidth"], probe["height"]
            report.problems += [f"broken image: {src}" for src in probe["brokenImages"]]
            report.problems += [f"broken anchor: #{a}" for a in probe["brokenAnchors"]]
            if probe["scrollWidth"] > probe["innerWidth"]:
                report.problems.append(f"page is {probe['scrollWidth']} px wide, wider than the {probe['innerWidth']} px window")
            for link in probe["links"]:
                url = urlparse(urldefrag(link)[0])
                if url.scheme in ("http", "https", "mailto"):
                    continue  # the paper's or a package's web page: not part of the site, not fetched offline
                target = Path(unquote(url.path)).resolve() if url.scheme == "file" else None
                if target is None or not target.is_relative_to(root):
                    report.problems.append(f"link leaves the site folder: {link}")
                elif not target.exists():
                    report.problems.append(f"broken link: {target.relative_to(root).as_posix()}")
                elif target.suffix == ".html" and target not in seen:
                    seen.add(target)
                    queue.append(target)
            if screenshots:
                shot = Path(screenshots) / (rel.replace("/", "__").rsplit(".", 1)[0] + ".png")
                browser.screenshot(shot, probe["height"])
                report.screenshot = str(shot)
    if screenshots:
        (Path(screenshots) / "report.json").write_text(json.dumps(
            {"index": str(index), "window": [width, height], "pages": [vars(r) for r in reports]}, indent=1))
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path, help="site/index.html of a run")
    ap.add_argument("--screenshots", type=Path, help="folder for full-page PNGs (default: site/screenshots)")
    ap.add_argument("--width", type=int, default=1400)
    args = ap.parse_args(argv)
    try:
        reports = check_site(args.index, args.screenshots or args.index.parent / "screenshots", args.width)
    except FileNotFoundError as exc:
        print(f"browser: {exc}", file=sys.stderr)
        return 2
    bad = [r for r in reports if r.problems]
    for r in reports:
        print(f"{'FAIL' if r.problems else 'ok  '} {r.path} ({r.width}x{r.height})" + "".join(f"\n     {p}" for p in r.problems))
    print(f"{len(reports)} pages, {len(bad)} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
