"""Open STUDY/report.html in headless Chromium, save a full-page screenshot, and fail unless
every figure rendered with a nonzero size and the page raised no error.

    PYTHONPATH=src python scripts/check_report.py STUDY [--screenshot PATH]

Needs a Chromium-family browser (Debian: ``apt-get install chromium``; or set $CHROMIUM).
Exit status 0: clean; 1: problems (listed); 2: no browser or no report (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalinglab.errors import ScalinglabError
from scalinglab.report.browser import check_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", help="study directory (or a report .html file)")
    ap.add_argument("--screenshot", help="PNG path (default: STUDY/report.png)")
    args = ap.parse_args(argv)
    page = Path(args.study)
    page = page if page.suffix == ".html" else page / "report.html"
    shot = Path(args.screenshot) if args.screenshot else page.with_suffix(".png")
    try:
        check = check_report(page, shot)
    except ScalinglabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{check.browser}: {len(check.images)} figures, page {check.height} px high, "
          f"screenshot {check.screenshot}")
    for p in check.problems:
        print(f"PROBLEM: {p}")
    return 1 if check.problems else 0


if __name__ == "__main__":
    sys.exit(main())
