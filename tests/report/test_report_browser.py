"""The report in a real headless browser (Chromium): every figure renders with a nonzero
size, no error, a screenshot is written. Skipped where no Chromium is installed (CI installs
none by default: ``apt-get install chromium`` enables it)."""

from __future__ import annotations

import pytest

from scalinglab.report import write_report
from scalinglab.report.browser import check_report, find_browser

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    find_browser() is None, reason="no Chromium on this machine (apt-get install chromium, "
    "or set $CHROMIUM to a Chromium-family browser)")]


def test_report_renders_in_headless_chromium(good_study, tmp_path):
    page = write_report(good_study, tmp_path / "report.html")
    check = check_report(page, tmp_path / "report.png")
    assert check.problems == []
    assert len(check.images) >= 6  # curves, IsoFLOP, allocation, landscape, backtest, holdout
    assert all(im["natural_width"] > 100 and im["height"] > 100 for im in check.images)
    png = check.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_broken_figure_is_caught(good_study, tmp_path):
    """The check can fail: an image that does not decode and a script error are reported."""
    page = write_report(good_study, tmp_path / "report.html")
    text = page.read_text().replace(
        "<h2>Runs</h2>", '<h2>Runs</h2><img alt="broken" src="data:image/png;base64,AAAA">'
        "<script>no_such_function()</script>")
    page.write_text(text)
    problems = check_report(page).problems
    assert any("no_such_function" in p for p in problems)
    assert any("'broken'" in p and "did not render" in p for p in problems)
