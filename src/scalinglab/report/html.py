"""The self-contained HTML page: inline CSS, figures as base64 PNG, no network access."""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from scalinglab.report import figures, verdicts
from scalinglab.report.analyses import adaptation_section, bias_section
from scalinglab.report.data import StudyData, approach3_fit, get, study_laws

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: 0.2em; margin-top: 2em; }
.sub { color: #666; margin-top: 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
.good { color: #1a7f37; font-weight: bold; } .bad { color: #b42318; font-weight: bold; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { background: #f7f7f9; border-radius: 6px; padding: 0.6em 1em; min-width: 9em; }
.card b { display: block; font-size: 1.3em; }
details summary { cursor: pointer; color: #0550ae; }
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def num(x: Any, digits: int = 3) -> str:
    """Numbers for tables: 3 significant digits, blank for missing."""
    if x is None or x == "":
        return ""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        if not math.isfinite(x):
            return f'<span class="bad" title="not a finite number">{esc(x)}</span>'
        return f"{x:.{digits}g}"
    return esc(x)


def ci(v: Any) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(x, (int, float)) for x in v):
        return f" [{num(v[0])}, {num(v[1])}]"
    return ""


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(fig: Figure | None, caption: str, missing: str) -> str:
    """The figure as an inline PNG, or a note saying what is missing."""
    if fig is None:
        return f'<p class="note">{esc(missing)}</p>'
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def safe_figure(make: Callable[[StudyData], Figure | None], s: StudyData) -> Figure | None:
    """A figure that cannot be drawn from odd data is skipped, never fatal to the report."""
    try:
        return make(s)
    except Exception:  # noqa: BLE001 - the page notes the missing figure instead
        return None


# ---------------------------------------------------------------------- sections


def summary_cards(s: StudyData) -> str:
    done = s.complete()
    failed = [r for r in s.rows if r.get("status") == "failed"]
    compute = sum(s.flops(r) for r in done)
    wall = sum(float(r.get("wall_time_s") or 0) for r in done)
    best = min(done, key=lambda r: r["final_val_loss"]) if done else None
    cards = [("runs complete", len(done)), ("runs failed", len(failed)),
             ("budgets", len(s.budgets())), ("total compute", f"{compute:.3g} FLOPs"),
             ("training time", f"{wall / 60:.1f} min"),
             ("best val loss", num(best["final_val_loss"], 4) if best else "-")]
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards) + "</div>"


def fit_table(s: StudyData) -> str:
    if not s.fits:
        return ('<p class="note">No fits.json yet: run <code>scalinglab fit STUDY</code>, then '
                "this report again. The IsoFLOP figure shows raw parabolas meanwhile.</p>")
    rows = []
    failed, unreliable = verdicts.failed_fits(s), verdicts.unreliable_fits(s)
    for key, label in verdicts.APPROACHES.items():
        f = s.fits.get(key)
        if label in failed:
            rows.append([label, failure(failed[label]), "", "", ""])
        elif isinstance(f, dict) and f.get("a") is not None:
            cis = f.get("ci") if isinstance(f.get("ci"), dict) else {}  # Approach 3 keeps them
            note = (f'<br><span class="bad">unreliable: {esc(unreliable[label])}</span>'
                    if label in unreliable else "")
            rows.append([label + note, num(f.get("a")) + ci(f.get("a_ci") or cis.get("a")),
                         num(f.get("b")) + ci(f.get("b_ci") or cis.get("b")),
                         num(f.get("n_coef")), num(f.get("d_coef"))])
    rows.append(["Chinchilla paper", "0.50 / 0.49 / 0.46", "0.50 / 0.51 / 0.54", "", ""])
    out = table(["approach", "a (N_opt ~ C^a)", "b (D_opt ~ C^b)", "N coefficient",
                 "D coefficient"], rows)
    out += (f"<p>Brackets: {verdicts.ci_level(s):.0%} bootstrap intervals over runs "
            f"({esc(s.fits.get('n_bootstrap', '?'))} resamples).</p>")
    a3 = approach3_fit(s)
    p = a3.law.to_dict() if a3 else None
    if p:
        cis = get(s.fits, "approach3", "ci", default={}) or {}
        out += "<p>Approach 3, L(N, D) = E + A / N<sup>alpha</sup> + B / D<sup>beta</sup>:</p>"
        out += table(["", "E", "A", "B", "alpha", "beta"], [
            ["this study"] + [num(p[k]) + ci(cis.get(k)) for k in ("E", "A", "B", "alpha",
                                                                     "beta")],
            ["Chinchilla (Hoffmann et al.)", "1.69", "406.4", "410.7", "0.34", "0.28"]])
    kap = s.fits.get("kaplan")
    if isinstance(kap, dict) and kap:
        scalars = {k: v for k, v in kap.items() if isinstance(v, (int, float))}
        out += "<p>Kaplan et al. L(N, D) form:</p>"
        out += table(list(scalars), [[num(v) for v in scalars.values()]])
    n = s.fits.get("n_runs")
    if n:
        out += f"<p>Fitted on {esc(n)} runs, FLOPs counted as <code>{esc(s.convention)}</code>.</p>"
    return out


def failure(reason: str) -> str:
    return f'<span class="bad">not fitted: {esc(reason)}</span>'


def allocation_rows(s: StudyData, multiples: tuple[int, ...] = (10, 100, 1000)
                    ) -> tuple[list[list], list[list]]:
    """Per larger budget: the study's fitted laws (N_opt, D_opt, D/N, predicted loss) and,
    apart, the Chinchilla paper's Approach 3 (N_opt, D_opt, D/N only: its loss is of another
    corpus and tokenizer, not comparable with the study's)."""
    from scalinglab.scaling.allocate import allocate

    budgets = s.budgets() or [max((s.flops(r) for r in s.complete()), default=0.0)]
    top = max(budgets)
    if not s.fits or top <= 0:
        return [], []
    fitted, reference = [], []
    for mult in multiples:
        c = top * mult
        for r in allocate(c, study_laws(s)):
            ext = r.get("extrapolation")
            budget = f"{c:.3g} ({mult}x)" + (f", {ext:.3g}x fitted" if ext else "")
            alloc = [num(r["n_opt"]) + ci(r.get("n_opt_ci")),
                     num(r["d_opt"]) + ci(r.get("d_opt_ci")), num(r["tokens_per_param"])]
            if r["source"].startswith("fit:"):
                fitted.append([budget, esc(r["source"]) + "".join(
                    f'<br><span class="bad">{esc(w)}</span>' for w in r.get("warnings", [])),
                    *alloc, num(r.get("loss"), 4) + ci(r.get("loss_ci"))])
            elif r["source"] == "Chinchilla approach 3":
                reference.append([f"{c:.3g} ({mult}x)", esc(r["source"]), *alloc])
    return fitted, reference


def allocation_table(s: StudyData) -> str:
    try:
        fitted, reference = allocation_rows(s)
    except Exception as e:  # noqa: BLE001 - a malformed fits.json must not sink the page
        return f'<p class="note">Allocation unavailable: {esc(e)}</p>'
    if not fitted and not reference:
        return '<p class="note">No fitted laws yet: the allocation needs fits.json.</p>'
    out = ""
    if fitted:
        out += table(["budget C", "law", "N_opt", "D_opt", "tokens / parameter",
                      "predicted loss"], fitted) + (
            f"<p>Intervals: {verdicts.ci_level(s):.0%}, bootstrap over runs; the loss interval "
            "is predictive (it adds the runs' scatter).</p>")
    else:
        out += '<p class="note">No law of this study could be fitted for an allocation.</p>'
    if reference:
        out += ("<p>For reference, the Chinchilla paper's law at the same budgets (C = 6ND). "
                "Its losses are left out: they are of its corpus and tokenizer, not comparable "
                "with this study's.</p>"
                + table(["budget C", "published law", "N_opt", "D_opt", "tokens / parameter"],
                        reference))
    return out


def isoflop_table(s: StudyData) -> str:
    """Each budget's IsoFLOP minimum as the fit stage found it, or why it has none."""
    budgets = s.budgets()
    if not budgets or not s.fits:
        return ""
    minima = {float(m["budget"]): m for m in get(s.fits, "approach2", "minima", default=[])
              if isinstance(m, dict) and m.get("budget")}
    a2_error = get(s.fits, "approach2", "error")
    rows = []
    for b in budgets:
        m = minima.get(b)
        runs = [r for r in s.complete("isoflop") if r["budget"] == b]
        if m is None:
            why = (verdicts.isoflop_failure(s, b)
                   or (f"Approach 2 not fitted: {a2_error}" if a2_error else "no minimum"))
            rows.append([num(b), str(len(runs)), "", "", f'<span class="bad">{esc(why)}</span>'])
            continue
        note = ("ok" if m.get("interior", True) else
                '<span class="bad">minimum outside the trained sizes: extrapolated</span>')
        rows.append([num(b), str(len(runs)), num(m.get("n_opt")) + ci(m.get("n_opt_ci")),
                     num(m.get("loss_min"), 4), note])
    return table(["budget C", "runs", "N_opt", "loss at minimum", "status"], rows)


def holdout_section(s: StudyData) -> str:
    h = s.fits.get("holdout")
    if not isinstance(h, dict) or not h:
        return ('<p class="note">No holdout check in fits.json: run <code>scalinglab fit STUDY '
                "--holdout-largest</code>.</p>")
    if h.get("error") and not h.get("predicted"):
        return f'<p class="note">Holdout check failed: {esc(h["error"])}</p>'
    method = h.get("method", "approach3")
    pred = get(h, "predicted", method, default={}) or {}
    best = get(h, "achieved", "best_run", default={}) or {}
    par = get(h, "achieved", "parabola", default={}) or {}
    rows = [["optimal N", num(pred.get("n_opt")) + ci(pred.get("n_opt_ci")),
             num(par.get("n_opt")), num(best.get("params"))],
            ["loss", num(pred.get("loss"), 4) + ci(pred.get("loss_ci")),
             num(par.get("loss_min"), 4), num(best.get("loss"), 4)]]
    out = table(["held-out budget " + num(h.get("budget")), f"predicted ({esc(method)})",
                 "achieved (parabola)", "achieved (best run)"], rows)
    err = h.get("loss_error_pct")
    if err is not None:
        cls = "good" if abs(float(err)) <= 2 else "bad"
        ext = h.get("extrapolation")
        ext_txt = f", {float(ext):.3g}x less compute than it," if ext else ""
        cov = h.get("covered")
        cov_txt = "" if cov is None else (" It lies inside" if cov else " It lies OUTSIDE") \
            + " the 95% predictive interval."
        out = (f'<p>Fitted on {esc(h.get("n_train_runs", "?"))} runs of the smaller budgets'
               f'{ext_txt} the predicted loss of the held-out largest budget is off by '
               f'<span class="{cls}">{float(err):+.2f}%</span> from the best run it reached '
               f'(goal: within 2%).{cov_txt}</p>' + out)
    return out + figure_html(safe_figure(figures.holdout_trust, s),
                             "Fit on all budgets but the largest; predict it; compare.",
                             "Holdout figure unavailable.")


def forecast_section(s: StudyData) -> str:
    """The study's own backtest (which law extrapolates, how far), the demo's forecast made
    before the largest budget was trained, and held-out runs predicted vs achieved."""
    rec = s.fits.get("recommended") if isinstance(s.fits.get("recommended"), dict) else {}
    out = ""
    if rec.get("method"):
        sup = rec.get("supported_factor")
        out += (f"<p>Recommended law: <b>{esc(rec['method'])}</b> ({esc(rec.get('reason', ''))});"
                f" the backtest supports extrapolating "
                + (f"{float(sup):g}x" if sup else "no factor") + " in compute. Every forecast "
                "that goes farther carries a warning.</p>")
        rows = [r for m in (rec.get("scores") or {}).values() for r in m if isinstance(r, dict)]
        out += figure_html(safe_figure(lambda _: figures.backtest_figure(rows), s),
                           "Backtest inside this study: fit on C <= C_max / k, predict the rest.",
                           "No backtest scores (too few budgets).")
    fc = s.forecast
    if fc.get("loss") is not None and fc.get("loss_ci"):
        lo, hi = fc["loss_ci"]
        out += (f"<p>Forecast made before any run at C = {num(fc.get('budget'))} was trained "
                f"({num(fc.get('extrapolation'))}x beyond the fitted runs, {esc(fc.get('method'))}"
                f"): N_opt {num(fc.get('n_opt'))}, loss {num(fc['loss'], 4)} "
                f"[{num(lo, 4)}, {num(hi, 4)}].</p>")
    h = s.fits.get("holdout") if isinstance(s.fits.get("holdout"), dict) else {}
    out += figure_html(safe_figure(lambda _: figures.predicted_vs_achieved(
        h.get("runs") or [], "Trust check: held-out runs"), s),
        "Each held-out run of the largest budget: predicted from the smaller budgets (95% "
        "predictive interval; an arrow: it goes on beyond the axes) against what it reached.",
        "No held-out run predictions.")
    return out or '<p class="note">No forecast data: run <code>scalinglab fit STUDY</code>.</p>'


def comparison_section(s: StudyData) -> str:
    cmp = s.comparison
    if not cmp.get("optimal") or not cmp.get("larger"):
        return ""
    rows = []
    for key in ("optimal", "larger"):
        m = cmp[key]
        rows.append([esc(key), esc(m.get("run_id", "")), num(m.get("params")),
                     num(m.get("tokens")), num(m.get("flops")), num(m.get("val_loss"), 4)])
    won = cmp.get("optimal_won")
    verdict = ""
    if won is not None:
        verdict = (f'<p>Compute-optimal model <span class="{"good" if won else "bad"}">'
                   f'{"won" if won else "lost"}</span> at equal compute.</p>')
    return ("<h2>Chinchilla vs Gopher in miniature</h2>" + verdict
            + table(["model", "run", f"N ({cmp.get('params_count', 'total')})", "D", "FLOPs",
                     "val loss"], rows)
            + figure_html(safe_figure(figures.comparison, s), "Validation loss over training.",
                          "No curves for the comparison runs."))


def downstream_section(s: StudyData) -> str:
    if not s.evals:
        return ""
    metrics = sorted({k for r in s.evals.values() for k in verdicts.flat_metrics(r)})[:8]
    by_id = {r["run_id"]: r for r in s.rows}
    order = sorted(s.evals, key=lambda run: downstream_key(s, by_id.get(run), run))
    rows = [[esc(run), num((by_id.get(run) or {}).get("budget")),
             num(s.flops(by_id[run]) if run in by_id else None),
             num((by_id.get(run) or {}).get(s.count))]
            + [num(verdicts.flat_metrics(s.evals[run]).get(m), 4) for m in metrics]
            for run in order]
    return ("<h2>Downstream evaluation</h2>"
            + table(["run", "budget", "FLOPs", "N"] + metrics, rows)
            + figure_html(safe_figure(figures.downstream, s), "Scores against compute.",
                          "Too few evaluated runs to plot."))


def downstream_key(s: StudyData, row: dict[str, Any] | None, run: str) -> tuple:
    """Sort key: budget, then compute, then size, as numbers (as strings 1e+16 < 3e+15)."""
    def f(v: Any) -> float:
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    row = row or {}
    return (f(row.get("budget")), f(s.flops(row)) if row else math.inf, f(row.get(s.count)),
            run)


def runs_table(s: StudyData) -> str:
    left_out = {r["run_id"] for r in s.not_drawn()}
    rows = [[esc(r["run_id"]), esc(r["kind"]), num(r.get("budget")),
             f"{r['n_layers']}x{r['d_model']}", num(r.get(s.count)), num(r.get("tokens")),
             num(r.get("final_train_loss"), 4), num(r.get("final_val_loss"), 4),
             num(r.get("wall_time_s")), esc(r.get("status")), esc(r.get("error") or "")
             + ('<span class="bad">no finite validation loss: left out of the figures'
                "</span>" if r["run_id"] in left_out else "")]
            for r in s.rows]
    note = (f'<p class="note">{len(left_out)} complete run(s) without a finite validation '
            "loss are left out of every figure (see the table).</p>" if left_out else "")
    return (note + "<details" + (" open" if left_out else "") + "><summary>All runs ("
            + str(len(rows)) + ")</summary>"
            + table(["run", "kind", "budget", "shape", "N", "D", "train loss", "val loss",
                     "wall s", "status", "error"], rows) + "</details>")


def render(s: StudyData) -> str:
    """The whole page."""
    f = figures
    parts = [
        f"<h1>Scaling study: {esc(s.root.name)}</h1>",
        f'<p class="sub">{esc(s.root.resolve())} &middot; FLOPs counted as '
        f"<code>{esc(s.convention)}</code> &middot; generated "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>",
        summary_cards(s),
        "<h2>Training curves</h2>",
        figure_html(safe_figure(f.training_curves, s), "Colour: model size (log scale). "
                    "Training loss is a running mean.", "No training curves yet."),
        "<h2>IsoFLOP profiles</h2>",
        figure_html(safe_figure(f.isoflop_profiles, s), "One colour per budget; stars mark each "
                    f"budget's fitted minimum with its {verdicts.ci_level(s):.0%} bootstrap "
                    "interval (hollow: outside the trained sizes; an arrow: the interval goes "
                    "on beyond the axes; dashed: a concave parabola, no minimum).",
                    "No complete IsoFLOP runs."),
        isoflop_table(s),
        "<h2>Compute-optimal allocation</h2>",
        figure_html(safe_figure(f.optimal_allocation, s), "Shaded: the budgets this study ran; "
                    "grey lines: published laws for reference (C = 6ND in their units); "
                    "orange bars: each IsoFLOP minimum's 95% interval (an arrow: it goes on "
                    "beyond 30x the minimum).",
                    "Needs complete runs."),
        "<h2>Fitted laws</h2>", fit_table(s),
        "<h3>Allocation for larger budgets</h3>", allocation_table(s),
        "<h2>Loss landscape</h2>",
        figure_html(safe_figure(f.loss_contours, s), "Contours of the fitted L(N, D); red: the "
                    "compute-optimal frontier.", "Needs Approach 3 in fits.json."
                    + (f" Approach 3 was not fitted: {get(s.fits, 'approach3', 'error')}"
                       if get(s.fits, "approach3", "error") else "")),
        "<h2>Forecast</h2>", forecast_section(s),
        "<h2>Can we trust the extrapolation?</h2>", holdout_section(s),
        comparison_section(s), downstream_section(s),
        adaptation_section(s.root), bias_section(s.root),
        "<h2>Runs</h2>", runs_table(s),
    ]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>scalinglab report: {esc(s.root.name)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")
