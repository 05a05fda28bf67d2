"""The report does not mislead: one colour scale, intervals at the fit's level, references
told apart, failed or unreliable fits marked with their reason, numbers sorted as numbers."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.contour import ContourSet
from matplotlib.patches import Polygon, Rectangle

from scalinglab.report import figures
from scalinglab.report.data import approach3_band, load_study
from scalinglab.report.html import allocation_table, downstream_section, fit_table, render


@pytest.fixture
def good(good_study):
    return load_study(good_study)


@pytest.fixture
def bad(bad_study):
    return load_study(bad_study)


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_contours_runs_and_colour_bar_share_one_scale(good):
    fig = figures.loss_contours(good)
    ax = fig.axes[0]
    cs = next(c for c in ax.collections if isinstance(c, ContourSet))
    sc = next(c for c in ax.collections if isinstance(c, PathCollection) and c.get_label()
              .startswith("runs"))
    cb = sc.colorbar
    assert cb is not None
    fig.canvas.draw()  # marker colours are resolved at draw time
    # every contour level lies on the bar, and each line has the bar's colour at its level
    assert cb.norm.vmin <= min(cs.levels) and max(cs.levels) <= cb.norm.vmax
    for level, color in zip(cs.levels, cs.get_edgecolor(), strict=True):
        np.testing.assert_allclose(color, cb.cmap(cb.norm(level)), atol=1e-6)
    losses = [r["final_val_loss"] for r in good.complete()]
    np.testing.assert_allclose(sc.get_facecolors(), cb.cmap(cb.norm(np.array(losses))),
                               atol=1e-6)
    # the legend sits below the axes, off the contour labels
    leg, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert leg.y1 <= box.y0
    _close(fig)


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_allocation_panel_band_shading_references_and_legend(good):
    fig = figures.optimal_allocation(good)
    ax = fig.axes[0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    level = good.fits["ci_level"]
    assert level == 0.95
    assert "Approach 3, 95% bootstrap interval" in labels and not any("90%" in t for t in labels)
    # the band is the central 95% of the bootstrap optima: wider than their central 90%
    c = np.logspace(15, 18, 5)
    lo95, hi95, *_ = approach3_band(good, c, 0.95)
    lo90, hi90, *_ = approach3_band(good, c, 0.90)
    assert np.all(lo95 <= lo90) and np.all(hi95 >= hi90) and np.any(hi95 > hi90)

    budgets = good.budgets()
    spans = [p for p in ax.patches if isinstance(p, (Rectangle, Polygon))
             and p.get_label() == "budgets this study ran"]
    assert len(spans) == 1
    xs = spans[0].get_xy()[:, 0] if isinstance(spans[0], Polygon) else [
        spans[0].get_x(), spans[0].get_x() + spans[0].get_width()]
    assert min(xs) == pytest.approx(min(budgets)) and max(xs) == pytest.approx(max(budgets))

    lines = _lines(ax)
    a1 = next(v for k, v in lines.items() if k.startswith("Chinchilla paper, Approach 1"))
    a3 = next(v for k, v in lines.items() if k.startswith("Chinchilla paper, Approach 3"))
    assert (a1.get_linestyle(), a1.get_color()) != (a3.get_linestyle(), a3.get_color())
    assert "alpha=0.34" in a3.get_label() and "C^0.50" in a1.get_label()
    envelope = lines["Approach 1 envelope (per C)"]
    assert envelope.get_marker() in ("None", "", None) and envelope.get_linewidth() <= 1.5

    fig.canvas.draw()  # the legend covers neither panel
    leg = fig.legends[0].get_window_extent()
    for a in fig.axes:
        assert not leg.overlaps(a.get_window_extent())
    _close(fig)


def _with_first_minimum_ci(good, below: float, above: float):
    """A copy of the study whose first IsoFLOP minimum has the interval [N/below, N*above]."""
    s = copy.copy(good)
    s.fits = copy.deepcopy(good.fits)
    m = s.fits["approach2"]["minima"][0]
    m["n_opt_ci"] = [m["n_opt"] / below, m["n_opt"] * above]
    return s, m


def _arrows(ax) -> list:
    return [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]


def test_isoflop_interval_off_the_axes_is_clipped_with_an_arrow(good):
    s, _ = _with_first_minimum_ci(good, 1e4, 1e4)
    fig = figures.isoflop_profiles(s)
    ax = fig.axes[0]
    sizes = [r["params_total"] for r in good.complete("isoflop")]
    assert ax.get_xlim() == pytest.approx((min(sizes) / 4, max(sizes) * 4))
    arrows = _arrows(ax)
    assert len(arrows) == 2  # both ends run off
    for line in ax.get_lines():
        x = line.get_xdata()
        if len(x) == 2 and x[0] != x[1]:  # the interval's segment
            assert ax.get_xlim()[0] <= min(x) and max(x) <= ax.get_xlim()[1]
    _close(fig)


def test_held_out_interval_off_the_axes_ends_in_an_arrow():
    runs = [{"loss": 3.0, "pred": 3.1, "lo": 2.0, "hi": 4.0},  # both ends far off the axes
            {"loss": 3.2, "pred": 3.15, "lo": 3.1, "hi": 3.18}]  # inside: capped, red
    fig = figures.predicted_vs_achieved(runs, "t")
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo > 2.0 and hi < 4.0
    arrows = _arrows(ax)
    assert len(arrows) == 2
    for line in ax.get_lines():
        assert lo <= min(line.get_ydata(), default=lo) and max(line.get_ydata(), default=hi) <= hi
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "inside its 95% interval", "outside its interval"]
    _close(fig)


def test_wide_minimum_interval_does_not_stretch_the_allocation_axis(good):
    s, m = _with_first_minimum_ci(good, 2, 1e7)
    fig = figures.optimal_allocation(s)
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < m["n_opt"] * 1e4  # the bar stops at 30x, the axis follows
    arrows = _arrows(ax)
    assert len(arrows) == 1 and arrows[0].xy[1] == pytest.approx(m["n_opt"] * 30)
    _close(fig)


def test_training_curve_axes_follow_the_data(good):
    fig = figures.training_curves(good)
    for ax in fig.axes[:2]:
        ys = np.concatenate([line.get_ydata() for line in ax.get_lines()])
        xs = np.concatenate([line.get_xdata() for line in ax.get_lines()])
        lo, hi = ax.get_ylim()
        assert ys.min() - 0.1 * (hi - lo) <= lo <= ys.min()
        assert xs.min() / 1.5 <= ax.get_xlim()[0] <= xs.min()
        assert xs.max() <= ax.get_xlim()[1] <= xs.max() * 1.5
    _close(fig)


def _with_evals(s):
    """Every run scored on a 4-choice task, accuracy rising with compute."""
    s = copy.copy(s)
    s.evals = {r["run_id"]: {"tasks": {"heldout_continuation": {"shots": {"0": {
        "acc": 0.25 + 0.01 * math.log10(s.flops(r))}}}}} for r in s.complete()}
    return s


def test_downstream_sorted_numerically_with_labels_ticks_and_chance(good):
    s = _with_evals(good)
    ids = sorted(s.evals)
    budgets_by_string = [next(r["budget"] for r in s.rows if r["run_id"] == i) for i in ids]
    assert budgets_by_string != sorted(budgets_by_string)  # run ids sort 1e+16 before 3e+15
    page = downstream_section(s)
    cells = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>", page)
    assert [float(c) for c in cells] == sorted(float(c) for c in cells)
    assert len(cells) == len(s.complete())
    fig = figures.downstream(s)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "acc"
    assert len([t for t in ax.get_xticklabels() if t.get_text()]) >= 2
    chance = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
    assert len(chance) == 1 and chance[0].get_ydata()[0] == pytest.approx(0.25)
    _close(fig)


def test_paper_losses_are_not_beside_the_study_losses(good):
    page = allocation_table(good)
    study_table, _, rest = page.partition("For reference")
    assert "predicted loss" in study_table and "Chinchilla approach 3" not in study_table
    assert "Chinchilla approach 3" in rest and "loss" not in rest.split("<table>", 1)[1]


def test_failed_and_unreliable_fits_are_marked_with_the_reason(bad, good):
    error = bad.fits["approach2"]["error"]
    assert error.startswith("approach 2 needs")
    page = render(bad)
    assert f"not fitted: {error}" in page.replace("&gt;", ">")
    assert "concave parabola: no minimum" in page  # the bent budget, in the IsoFLOP table
    fig = figures.isoflop_profiles(bad)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("3e+15" in t and "concave" in t for t in labels)
    notes = [t.get_text() for t in fig.texts]
    assert any("NOT FITTED: Approach 2" in t for t in notes)
    _close(fig)

    # an exponent that makes N_opt shrink with compute is flagged; a sane one is not
    assert "unreliable" not in fit_table(good)
    s = copy.copy(good)
    s.fits = copy.deepcopy(good.fits)
    s.fits["approach1"]["a"] = -0.1
    assert "Approach 1<br><span class=\"bad\">unreliable: a = -0.1 outside (0, 1)" in fit_table(s)
    fig = figures.optimal_allocation(s)
    assert any(line.get_label().endswith("(UNRELIABLE)") for line in fig.axes[0].get_lines())
    _close(fig)


def test_a_run_without_a_finite_loss_is_left_out_and_said_so(good):
    s = copy.copy(good)
    s.rows = [*good.rows, dict(good.rows[0], run_id="nan-run", final_val_loss=float("nan"))]
    assert "nan-run" not in {r["run_id"] for r in s.complete()}
    page = render(s)
    assert "1 complete run(s) without a finite validation loss" in page
    assert re.search(r"nan-run.*no finite validation loss: left out", page)
    assert figures.training_curves(s) is not None
