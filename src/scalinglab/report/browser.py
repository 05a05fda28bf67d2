"""Check ``STUDY/report.html`` in a real headless browser (Chromium's own ``--headless``
mode, no driver library: it works offline, with Debian's ``chromium`` package).

The page is loaded twice: once as it is, for a full-page screenshot; once as a copy with two
small scripts added (the report itself has none), which record every JavaScript error and
every resource that failed to load, then measure each ``<img>`` once the page has loaded, and
write the findings into the DOM, which ``--dump-dom`` returns.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from scalinglab.errors import ScalinglabError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1200

# Installed first in <head>: errors of scripts, and of images (their error events do not
# bubble, but are seen by a capturing listener on window).
_CATCH = """<script>window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && t.tagName
    ? 'failed to load <' + t.tagName.toLowerCase() + '> ' + String(t.src || t.href).slice(0, 80)
    : 'JavaScript error: ' + e.message);
}, true);</script>"""

# Appended before </body>: runs after every image has loaded (or failed to).
_MEASURE = """<script>window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (im) {
    var r = im.getBoundingClientRect();
    return {alt: im.alt.slice(0, 80), complete: im.complete, natural_width: im.naturalWidth,
            natural_height: im.naturalHeight, width: r.width, height: r.height};
  });
  var out = document.createElement('pre');
  out.id = 'scalinglab-check';
  out.textContent = JSON.stringify({errors: window.__errors, images: imgs,
    height: document.documentElement.scrollHeight, title: document.title});
  document.body.appendChild(out);
});</script>"""


@dataclasses.dataclass
class BrowserCheck:
    """What the browser saw."""

    browser: str
    errors: list[str]
    images: list[dict]
    height: int
    screenshot: Path | None

    @property
    def problems(self) -> list[str]:
        """Every error, and every image that did not render with a nonzero size."""
        out = list(self.errors)
        for i, im in enumerate(self.images):
            if not (im["complete"] and im["natural_width"] > 0 and im["width"] > 0
                    and im["height"] > 0):
                out.append(f"figure {i} ({im['alt']!r}) did not render: {im}")
        return out


def find_browser() -> str | None:
    """Path of a Chromium-family browser ($CHROMIUM first), or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _run(browser: str, args: list[str], timeout: float) -> str:
    # --no-sandbox: containers (and root) have no user namespaces for Chromium's sandbox.
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--allow-file-access-from-files", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ScalinglabError(f"{browser}: no answer within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ScalinglabError(f"{browser} exited with {proc.returncode}: {tail[0]}")
    return proc.stdout


def check_report(page: str | Path, screenshot: str | Path | None = None,
                 browser: str | None = None, timeout: float = 60.0) -> BrowserCheck:
    """Load ``page`` in headless Chromium; measure its images; optionally save a full-page
    PNG screenshot. Raises ScalinglabError when no browser is found or it fails."""
    page = Path(page).resolve()
    if not page.is_file():
        raise ScalinglabError(f"{page}: no such report (run `scalinglab report STUDY` first)")
    browser = browser or find_browser()
    if browser is None:
        raise ScalinglabError("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    text = page.read_text()
    with tempfile.TemporaryDirectory(prefix="scalinglab-browser-") as tmp:
        probe = Path(tmp) / "report.html"
        probe.write_text(_inject(text))
        dom = _run(browser, ["--virtual-time-budget=10000", f"--user-data-dir={tmp}/profile",
                             "--dump-dom", probe.as_uri()], timeout)
        found = re.search(r'<pre id="scalinglab-check">(.*?)</pre>', dom, re.S)
        if not found:
            raise ScalinglabError(f"{page}: the browser never finished loading the page")
        seen = json.loads(_unescape(found.group(1)))
        shot = None
        if screenshot:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            height = max(600, min(int(seen["height"]), 16000))  # Chromium's texture limit
            _run(browser, [f"--window-size={WIDTH},{height}", f"--user-data-dir={tmp}/shot",
                           f"--screenshot={shot}", page.as_uri()], timeout)
            if not shot.is_file() or shot.stat().st_size == 0:
                raise ScalinglabError(f"{browser}: no screenshot written to {shot}")
    return BrowserCheck(browser=browser, errors=seen["errors"], images=seen["images"],
                        height=int(seen["height"]), screenshot=shot)


def _inject(text: str) -> str:
    head = text.find("<head>")
    if head < 0 or "</body>" not in text:
        raise ScalinglabError("report.html has no <head> or no </body>: not a report page")
    text = text[:head + 6] + _CATCH + text[head + 6:]
    i = text.rfind("</body>")
    return text[:i] + _MEASURE + text[i:]


def _unescape(s: str) -> str:
    """--dump-dom serialises text content with &amp; &lt; &gt; escaped."""
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace(
        "&amp;", "&")
