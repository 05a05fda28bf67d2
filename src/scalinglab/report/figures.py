"""The report's matplotlib figures. Each returns a Figure, or None when the study lacks the
data for it (the page then says what is missing)."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to PNG bytes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedFormatter,
    FixedLocator,
    LogFormatter,
    NullFormatter,
    NullLocator,
)

from scalinglab.report.data import (  # noqa: E402
    StudyData,
    approach3_band,
    approach3_fit,
    finite,
    get,
    power_law,
    reference_laws,
    study_laws,
)
from scalinglab.report.verdicts import (  # noqa: E402
    APPROACHES,
    chance_levels,
    ci_level,
    failed_fits,
    flat_metrics,
    unreliable_fits,
)

APPROACH_STYLE = {key: (label, f"C{i}") for i, (key, label) in enumerate(APPROACHES.items())}


def _budget_colors(budgets: list[float]) -> dict[float, Any]:
    cmap = plt.get_cmap("viridis")
    n = max(1, len(budgets) - 1)
    return {b: cmap(0.1 + 0.8 * i / n) for i, b in enumerate(budgets)}


def training_curves(s: StudyData) -> Figure | None:
    """Training loss against compute (left) and validation loss against tokens (right)."""
    runs = [r for r in s.complete() if s.curves.get(r["run_id"])]
    if not runs:
        return None
    sizes = [float(r[s.count]) for r in runs]
    norm = LogNorm(min(sizes), max(sizes) * 1.0001)
    cmap = plt.get_cmap("plasma")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn: dict[Any, list[tuple[np.ndarray, np.ndarray]]] = {ax1: [], ax2: []}
    for r in runs:
        rows = s.curves[r["run_id"]]
        per_token = s.flops(r) / max(1, r["tokens"])
        color = cmap(norm(float(r[s.count])))
        steps = [m for m in rows if "train_loss" in m and "tokens" in m]
        val = [m for m in rows if m.get("val_loss") is not None and "tokens" in m]
        for ax, x, y, fmt in (
                (ax1, [m["tokens"] * per_token for m in steps],
                 _smooth([m["train_loss"] for m in steps]), "-"),
                (ax2, [m["tokens"] for m in val], [m["val_loss"] for m in val], "-o")):
            if len(x):
                ax.plot(x, y, fmt, ms=2, color=color, lw=0.9, alpha=0.8)
                drawn[ax].append((np.asarray(x, dtype=float), np.asarray(y, dtype=float)))
    ax1.set(xscale="log", xlabel=f"training FLOPs ({s.convention})", ylabel="training loss",
            title="Training curves")
    ax2.set(xscale="log", xlabel="tokens", ylabel="validation loss", title="Validation loss")
    _limits(ax1, drawn[ax1], [r["final_train_loss"] for r in runs if r.get("final_train_loss")])
    _limits(ax2, drawn[ax2], [r["final_val_loss"] for r in runs])
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=[ax1, ax2],
                 label=f"parameters ({s.count.removeprefix('params_').replace('_', '-')})")
    return fig


def _smooth(y: list[float], window: int = 9) -> np.ndarray:
    """Running mean (edges shrink the window) so that noisy tiny-batch curves stay legible."""
    y_arr = np.asarray(y, dtype=float)
    if len(y_arr) < window:
        return y_arr
    kernel = np.ones(window) / window
    num = np.convolve(y_arr, kernel, mode="same")
    den = np.convolve(np.ones_like(y_arr), kernel, mode="same")
    return num / den


def _limits(ax, curves: list[tuple[np.ndarray, np.ndarray]], finals: list[float]) -> None:
    """Axes from the drawn data: x spans the curves; y starts at the lowest drawn loss and
    stops a little above the final losses (the first steps' loss would flatten the rest)."""
    pts = [(x, y) for x, y in curves if len(x)]
    if not pts:
        return
    x = np.concatenate([p[0] for p in pts])
    y = np.concatenate([p[1] for p in pts])
    ok = np.isfinite(y) & (x > 0)
    if not ok.any():
        return
    x, y = x[ok], y[ok]
    ax.set_xlim(x.min() / 1.15, x.max() * 1.15)
    lo = float(y.min())
    top = max(finals) if finals else float(y.max())
    hi = min(float(y.max()), top + 1.5 * (top - lo + 0.2))
    pad = 0.04 * (hi - lo) if hi > lo else 0.1
    ax.set_ylim(lo - pad, hi + pad)


def isoflop_profiles(s: StudyData) -> Figure | None:
    """Final validation loss against N per budget, the fitted parabolas and their minima.
    A budget whose parabola has no minimum, or whose minimum lies outside its runs, says so
    in the legend; a minimum's interval that leaves the axes ends in an arrow."""
    budgets = s.budgets()
    if not budgets:
        return None
    colors = _budget_colors(budgets)
    minima = {float(m["budget"]): m for m in get(s.fits, "approach2", "minima", default=[])
              if isinstance(m, dict) and m.get("budget")}
    sizes = [float(r[s.count]) for r in s.complete("isoflop") if float(r[s.count]) > 0]
    if not sizes:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.8))
    # a wild bootstrap interval must not squash the runs into a corner: it is clipped instead
    xlim = (min(sizes) / 4, max(sizes) * 4)
    ax.set_xscale("log")
    ax.set_xlim(*xlim)
    for b in budgets:
        runs = sorted((r for r in s.complete("isoflop") if r["budget"] == b),
                      key=lambda r: r[s.count])
        n = np.array([float(r[s.count]) for r in runs])
        loss = np.array([float(r["final_val_loss"]) for r in runs])
        label = f"C = {b:.2g}"
        if len(runs) >= 3:
            # The drawn curve is a least-squares parabola in log10 N (as Approach 2 fits); the
            # marked minimum is the fit stage's, with its bootstrap interval when present.
            coef = np.polyfit(np.log10(n), loss, 2)
            x = np.linspace(np.log10(n.min()) - 0.15, np.log10(n.max()) + 0.15, 100)
            concave = not coef[0] > 0
            ax.plot(10 ** x, np.polyval(coef, x), "--" if concave else "-", color=colors[b],
                    lw=1.2)
            label += _mark_minimum(ax, minima.get(b), coef, colors[b], xlim,
                                   (n.min(), n.max()))
        else:
            label += f" (only {len(runs)} runs: no parabola)"
        ax.plot(n, loss, "o", color=colors[b], label=label)
    ax.set(xlabel=f"parameters N ({s.count.removeprefix('params_')})",
           ylabel="final validation loss", title="IsoFLOP profiles (Approach 2)")
    ax.legend(fontsize=8, title="budget (FLOPs)", title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
    _note_failures(fig, {k: v for k, v in failed_fits(s).items() if k == "Approach 2"})
    return fig


def _mark_minimum(ax, m: dict[str, Any] | None, coef: np.ndarray, color: Any,
                  xlim: tuple[float, float], runs: tuple[float, float]) -> str:
    """Draw the fit stage's minimum with its interval (clipped to ``xlim``, an arrow where it
    goes on); without one, the drawn parabola's vertex when it lies within ``runs`` (the
    budget's smallest and largest N). Returns what the legend should add:
    why a budget has no minimum, or that its minimum is unreliable."""
    if coef[0] <= 0:
        return " (concave parabola: no minimum)"
    if not (m and m.get("n_opt")):  # no fit-stage minimum: the drawn parabola's own vertex
        x = -coef[1] / (2 * coef[0])
        if not _inside(10 ** x, runs):
            return " (parabola's vertex outside its runs)"
        ax.plot([10 ** x], [np.polyval(coef, x)], "*", ms=13, color=color, mec="black", zorder=5)
        return " (star: drawn parabola's vertex, no fitted minimum)"
    n_opt, loss = float(m["n_opt"]), m.get("loss_min")
    loss = float(loss) if loss is not None else float(np.polyval(coef, math.log10(n_opt)))
    interior = bool(m.get("interior", True))
    ci = m.get("n_opt_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(v) for v in ci):
        _clipped_interval(ax, loss, float(ci[0]), float(ci[1]), xlim)
    if _inside(n_opt, xlim):
        ax.plot([n_opt], [loss], "*", ms=13, color=color if interior else "white",
                mec="black", zorder=5)
    return "" if interior else " (minimum outside the trained sizes: extrapolated)"


def _inside(x: float, xlim: tuple[float, float]) -> bool:
    return xlim[0] <= x <= xlim[1]


def _clipped_interval(ax, at: float, lo: float, hi: float, bounds: tuple[float, float], *,
                      vertical: bool = False, log: bool = True, color: Any = "black",
                      lw: float = 1.0) -> None:
    """An interval [lo, hi] drawn at ``at`` (a height, or with ``vertical`` an x), cut to
    ``bounds``: an end inside gets a cap, a cut end an arrow pointing on (its tail 15% of the
    way back, in the axis's log or linear scale)."""
    a, b = max(lo, bounds[0]), min(hi, bounds[1])
    if a >= b:
        return

    def point(u: float) -> tuple[float, float]:
        return (at, u) if vertical else (u, at)

    ax.plot(*zip(point(a), point(b), strict=True), "-", color=color, lw=lw, zorder=4)
    for end, cut, inner in ((a, lo < a, b), (b, hi > b, a)):
        if cut:
            tail = end * (inner / end) ** 0.15 if log else end + 0.15 * (inner - end)
            ax.annotate("", xy=point(end), xytext=point(tail), zorder=4,
                        arrowprops={"arrowstyle": "->", "color": color, "lw": lw})
        else:
            ax.plot(*zip(point(end), strict=True), "_" if vertical else "|", color=color,
                    ms=8, zorder=4)


def _budget_range(s: StudyData) -> np.ndarray:
    budgets = s.budgets() or [float(s.flops(r)) for r in s.complete() if s.flops(r) > 0]
    if not budgets:
        return np.array([])
    return np.logspace(math.log10(min(budgets) / 3), math.log10(max(budgets) * 1000), 60)


# Published laws (names of ``laws.paper``): one line style and grey each, so that the two
# Chinchilla approaches stay apart.
REFERENCE_STYLE = {"Chinchilla approach 1 (Table 3)": ("--", "0.45"),
                   "Chinchilla approach 3": ("-.", "0.1"), "Kaplan et al. 2020": (":", "0.5")}


def optimal_allocation(s: StudyData) -> Figure | None:
    """N_opt(C) and D_opt(C) on log-log axes: fitted laws, bootstrap band, references."""
    c = _budget_range(s)
    if c.size == 0:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    minima = [m for m in get(s.fits, "approach2", "minima", default=[]) if isinstance(m, dict)]
    level = ci_level(s)
    unreliable = unreliable_fits(s)
    for ax, which in zip(axes, ("n", "d"), strict=True):
        for key, (label, color) in APPROACH_STYLE.items():
            law = power_law(s.fits.get(key) or {}, which)
            if law:
                bad = label in unreliable
                ax.plot(c, law[0] * c ** law[1], color=color, lw=1.2 if bad else 2,
                        ls=(0, (4, 2)) if bad else "-",
                        label=f"{label}: {which.upper()} ~ C^{law[1]:.2f}"
                        + (" (UNRELIABLE)" if bad else ""))
        band = approach3_band(s, c, level)
        if band is not None:
            lo, hi = (band[0], band[1]) if which == "n" else (band[2], band[3])
            ax.fill_between(c, lo, hi, color="C2", alpha=0.2,
                            label=f"Approach 3, {level:.0%} bootstrap interval")
        for name, (label, n, d) in reference_laws(c).items():
            style, color = REFERENCE_STYLE.get(name, ("--", "grey"))
            ax.plot(c, n if which == "n" else d, style, color=color, lw=1.2, label=label)
        _plot_minima(ax, minima, which)
        pts = [p for p in get(s.fits, "approach1", "points", default=[]) or []
               if isinstance(p, dict) and p.get("flops") and p.get("n_opt")]
        if pts:  # a dense grid of C: a thin line, not hundreds of overlapping dots
            ax.plot([p["flops"] for p in pts], [p["n_opt" if which == "n" else "d_opt"]
                    for p in pts], "-", color="C0", lw=1, alpha=0.7,
                    label="Approach 1 envelope (per C)")
        budgets = s.budgets()
        if budgets:
            ax.axvspan(min(budgets), max(budgets), color="0.9", zorder=0,
                       label="budgets this study ran")
        ax.set(xscale="log", yscale="log", xlabel=f"compute C (FLOPs, {s.convention})",
               ylabel="optimal parameters N" if which == "n" else "optimal tokens D",
               title="N_opt(C)" if which == "n" else "D_opt(C)")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=3,
               bbox_to_anchor=(0.5, 0.0))  # below the panels: it hid the reference lines
    _note_failures(fig, failed_fits(s), unreliable)
    return fig


def _note_failures(fig: Figure, failed: dict[str, str],
                   unreliable: dict[str, str] | None = None) -> None:
    """Say in the figure which approaches are missing or unreliable, and why."""
    lines = [f"NOT FITTED: {k}: {v}" for k, v in failed.items()] + [
        f"UNRELIABLE: {k}: {v}" for k, v in (unreliable or {}).items()]
    if lines:
        text = "\n".join(textwrap.fill(line, 130) for line in lines)
        fig.text(0.5, 1.0, text, ha="center", va="bottom", fontsize=8, color="#b42318")


MINIMUM_CI_SPAN = 30.0  # an IsoFLOP minimum's interval is drawn to at most 30x either side


def _plot_minima(ax, minima: list[dict[str, Any]], which: str) -> None:
    pts = [(float(m["budget"]), m.get("n_opt" if which == "n" else "d_opt"), m) for m in minima]
    pts = [(b, float(v), m) for b, v, m in pts if v]
    if not pts:
        return
    for inside, face, label in ((True, "C1", "IsoFLOP minima"),
                                (False, "white", "IsoFLOP minima outside the trained sizes")):
        sel = [p for p in pts if bool(p[2].get("interior", True)) == inside]
        if not sel:
            continue
        ax.plot([p[0] for p in sel], [p[1] for p in sel], "o", color="C1", mfc=face,
                mec="black", zorder=5, label=label)
        if which == "n":
            for b, v, m in sel:
                ci = m.get("n_opt_ci")
                if _interval(v, ci):  # cut at 30x either way: a wide one would stretch the axis
                    _clipped_interval(ax, b, float(ci[0]), float(ci[1]),
                                      (v / MINIMUM_CI_SPAN, v * MINIMUM_CI_SPAN),
                                      vertical=True, color="C1", lw=1.2)


def loss_contours(s: StudyData) -> Figure | None:
    """Approach 3's L(N, D) as contours, the runs, IsoFLOP lines and the efficient frontier."""
    fit = approach3_fit(s)
    runs = s.complete()
    if fit is None or not fit.law.has_optimum or not runs:
        return None
    n_runs = np.array([float(r[s.count]) for r in runs])
    d_runs = np.array([float(r["tokens"]) for r in runs])
    c = _budget_range(s)
    k = study_laws(s).k
    n_front, d_front = fit.law.optimum(c, k)
    n_lo, n_hi = min(n_runs.min(), n_front.min()) / 2, max(n_runs.max(), n_front.max()) * 2
    d_lo, d_hi = min(d_runs.min(), d_front.min()) / 2, max(d_runs.max(), d_front.max()) * 2
    nn, dd = np.meshgrid(np.logspace(np.log10(n_lo), np.log10(n_hi), 200),
                         np.logspace(np.log10(d_lo), np.log10(d_hi), 200))
    loss = fit.law.loss(nn, dd)
    fig, ax = plt.subplots(figsize=(8, 6.2))
    levels = np.unique(np.round(np.quantile(loss, np.linspace(0.02, 0.9, 14)), 3))
    run_loss = np.array([float(r["final_val_loss"]) for r in runs])
    # One scale for contours, markers and colour bar: a contour labelled 3.06 and a run that
    # reached 3.06 get the colour the bar gives 3.06.
    norm = Normalize(min(levels.min(), run_loss.min()), max(levels.max(), run_loss.max()))
    cs = ax.contour(nn, dd, loss, levels=levels, cmap="viridis_r", norm=norm, linewidths=0.8)
    ax.clabel(cs, fontsize=7, fmt="%.2f", inline=True)
    for b in s.budgets():
        n_line = np.logspace(np.log10(n_lo), np.log10(n_hi), 50)
        ax.plot(n_line, b / (k * n_line), ":", color="grey", lw=0.8)
    ax.plot(n_front, d_front, "-", color="crimson", lw=2, label="efficient frontier (Approach 3)")
    sc = ax.scatter(n_runs, d_runs, c=run_loss, cmap="viridis_r", norm=norm,
                    edgecolors="black", s=30, zorder=5, label="runs (colour: final val loss)")
    fig.colorbar(sc, ax=ax, label="validation loss (contours and runs)")
    ax.set(xscale="log", yscale="log", xlim=(n_lo, n_hi), ylim=(d_lo, d_hi),
           xlabel=f"parameters N ({s.count.removeprefix('params_')})", ylabel="tokens D",
           title=f"L(N, D) = E + A/N^alpha + B/D^beta (dotted: C = {k:.3g} N D per budget)")
    # below the axes: a legend inside would hide contour labels
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return fig


def holdout_trust(s: StudyData) -> Figure | None:
    """The held-out budget: its runs, the predicted optimum (with its interval) and loss."""
    h = s.fits.get("holdout") or {}
    method = h.get("method", "approach3")
    budget, pred = h.get("budget"), get(h, "predicted", method, default={}) or {}
    if budget is None or pred.get("loss") is None:
        return None
    runs = sorted((r for r in s.complete("isoflop") if r.get("budget") == float(budget)),
                  key=lambda r: r[s.count])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if runs:
        ax.plot([r[s.count] for r in runs], [r["final_val_loss"] for r in runs], "o-",
                color="0.4", label=f"held-out runs (C = {float(budget):.3g}), not fitted")
    x, loss = float(pred.get("n_opt") or runs[0][s.count]), float(pred["loss"])
    xerr = _interval(x, pred.get("n_opt_ci"))
    yerr = _interval(loss, pred.get("loss_ci"))
    ax.errorbar([x], [loss], xerr=xerr, yerr=yerr, fmt="*", ms=15, color="C3", mec="black",
                capsize=5, ecolor="C3",
                label=f"predicted optimum ({method}, fitted without this budget)")
    achieved = get(h, "achieved", "best_run", default={}) or {}
    if achieved.get("loss") is not None:
        ax.axhline(float(achieved["loss"]), color="C0", ls="--", lw=1,
                   label="achieved: best held-out run")
    err = h.get("loss_error_pct")
    title = "Holdout trust check"
    if err is not None:
        title += f": predicted loss off by {float(err):+.2f}%"
    ax.set(xscale="log", xlabel=f"parameters N ({s.count.removeprefix('params_')})",
           ylabel="validation loss", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def _interval(v: float, ci: Any) -> list[list[float]] | None:
    """Error-bar lengths [[below], [above]] from a [lo, hi] interval (None when absent)."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(x) for x in ci):
        return [[max(0.0, v - float(ci[0]))], [max(0.0, float(ci[1]) - v)]]
    return None  # absent, or NaN where every bootstrap refit failed


def comparison(s: StudyData) -> Figure | None:
    """The demo's Chinchilla-vs-Gopher in miniature: validation curves of the two models."""
    cmp = s.comparison
    if not cmp.get("optimal") or not cmp.get("larger"):
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, color in (("optimal", "C2"), ("larger", "C3")):
        m = cmp[key]
        rows = [r for r in s.curves.get(m.get("run_id", ""), []) if r.get("val_loss") is not None]
        label = (f"{key}: N={m.get('params', 0):.3g}, D={m.get('tokens', 0):.3g}, "
                 f"val {m.get('val_loss', float('nan')):.3f}")
        if rows:
            per_token = m.get("flops", 0) / max(1, m.get("tokens", 1))
            ax.plot([r["tokens"] * per_token for r in rows], [r["val_loss"] for r in rows],
                    "-o", ms=3, color=color, label=label)
    ax.set(xscale="log", xlabel=f"training FLOPs ({s.convention})", ylabel="validation loss",
           title="Same compute: compute-optimal model vs 4x larger on 4x fewer tokens")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def downstream(s: StudyData) -> Figure | None:
    """Each evaluation metric against training compute, one marker per run, with the score of
    guessing where it is known."""
    series: dict[str, list[tuple[float, float]]] = {}
    chance: dict[str, float] = {}
    for r in s.complete():
        result = s.evals.get(r["run_id"], {})
        for name, value in flat_metrics(result).items():
            series.setdefault(name, []).append((s.flops(r), value))
        chance |= chance_levels(result)
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if not series:
        return None
    names = sorted(series)[:6]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        x, y = zip(*sorted(series[name]), strict=True)
        ax.plot(x, y, "o", color="C4")
        if name in chance:
            ax.axhline(chance[name], color="grey", ls="--", lw=1,
                       label=f"chance {chance[name]:.2g}")
            ax.legend(fontsize=7)
        ax.set(xscale="log", xlabel=f"training FLOPs ({s.convention})",
               ylabel=name.rsplit(" ", 1)[-1], title=name)
        _compute_ticks(ax, min(x), max(x))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _compute_ticks(ax, lo: float, hi: float) -> None:
    """Three labelled ticks across the runs' compute: budgets a factor 2 apart leave a log
    axis with one decade tick (or minor labels on top of each other)."""
    ticks = np.geomspace(lo, hi, 3) if hi > lo else np.array([lo / 2, lo, lo * 2])
    ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:.2g}" for t in ticks]))
    ax.xaxis.set_minor_formatter(NullFormatter())


def save(fig: Figure, path) -> None:
    """Write a figure as PNG (the directory must exist) and release it."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def backtest_figure(rows: list[dict[str, Any]]) -> Figure | None:
    """Backtest summaries: median |error| (solid) and max |error| (dotted) against the
    extrapolation factor, one colour per method; 95% coverage on the right panel."""
    rows = [r for r in rows if "median_abs_err_pct" in r]
    if not rows:
        return None
    fig, (ax, ax_cov) = plt.subplots(1, 2, figsize=(11, 4.2))
    factors = sorted({r["factor"] for r in rows})
    for i, m in enumerate(dict.fromkeys(r["method"] for r in rows)):
        pts = sorted((r["factor"], r["median_abs_err_pct"], r["max_abs_err_pct"],
                      r["coverage"]) for r in rows if r["method"] == m)
        f, med, mx, cov = (np.array(v) for v in zip(*pts, strict=True))
        ax.plot(f, med, "o-", color=f"C{i}", label=m)
        ax.plot(f, mx, ":", color=f"C{i}")
        ax_cov.plot(f, cov * 100, "o-", color=f"C{i}", label=m)
    ax.set(xscale="log", yscale="log", xlabel="extrapolation factor k (fit on C <= C_max / k)",
           ylabel="|relative error| of held-out losses (%)",
           title="Backtest error (solid: median, dotted: max)")
    ax_cov.axhline(95, color="grey", ls="--", lw=1)
    ax_cov.set(xscale="log", ylim=(0, 105), xlabel="extrapolation factor k",
               ylabel="held-out runs inside the 95% interval (%)", title="Coverage")
    for a in (ax, ax_cov):
        a.grid(alpha=0.3, which="both")
        a.xaxis.set_major_locator(FixedLocator(factors))  # the factors run, as "4" not 4x10^0
        a.xaxis.set_major_formatter(FixedFormatter([f"{k:g}" for k in factors]))
        a.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.legend(fontsize=8)
    return fig


def predicted_vs_achieved(runs: list[dict[str, Any]], title: str) -> Figure | None:
    """Held-out runs: predicted loss with its 95% interval against the loss reached. The axes
    span the points; an interval that goes beyond them ends in an arrow instead of a cap."""
    runs = [r for r in runs if all(isinstance(r.get(k), (int, float))
                                   for k in ("loss", "pred", "lo", "hi"))]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5))
    true = np.array([r["loss"] for r in runs])
    pred = np.array([r["pred"] for r in runs])
    lo, hi = min(true.min(), pred.min()) * 0.98, max(true.max(), pred.max()) * 1.02
    covered = [r["lo"] <= r["loss"] <= r["hi"] for r in runs]
    for r, x, y, inside in zip(runs, true, pred, covered, strict=True):
        color = "C0" if inside else "C3"
        ax.plot([x], [y], "o", color=color)
        _clipped_interval(ax, x, r["lo"], r["hi"], (lo, hi), vertical=True, log=False,
                          color=color)
    for color, label, shown in (("C0", "inside its 95% interval", any(covered)),
                                ("C3", "outside its interval", not all(covered))):
        if shown:
            ax.plot([], [], "o", color=color, label=label)
    ax.plot([lo, hi], [lo, hi], "--", color="grey", lw=1)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="achieved loss", ylabel="predicted loss",
           title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
