"""``scalinglab fit``: the scaling laws of a study (or a CSV of runs), written to fits.json."""

from __future__ import annotations

import math
from pathlib import Path

from scalinglab.cli.common import print_json, print_table
from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import FRONTIER_METHODS, LOSS_METHODS
from scalinglab.scaling.fitdata import drop_worst, load_csv, load_study
from scalinglab.scaling.fits_io import fit_data, write_fits
from scalinglab.units import format_count


def _fmt_ci(value: float | None, ci) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if not ci or ci[0] is None or (isinstance(ci[0], float) and math.isnan(ci[0])):
        return f"{value:.4g}"
    return f"{value:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]"


def _frontier_row(key: str, f: dict) -> dict:
    ci = f.get("ci", {})
    n_at = f.get("n_coef") * 1e21 ** f["a"] if isinstance(f.get("n_coef"), (int, float)) \
        and isinstance(f.get("a"), (int, float)) else None
    return {"method": key, "a (N_opt ~ C^a)": _fmt_ci(f["a"], f.get("a_ci") or ci.get("a")),
            "b (D_opt ~ C^b)": _fmt_ci(f.get("b"), f.get("b_ci") or ci.get("b")),
            "N_opt at 1e21": "-" if n_at is None or not math.isfinite(n_at)
            else format_count(n_at), "residual sd": _fmt_ci(f.get("residual_sd"), None)}


def print_summary(fits: dict) -> None:
    """Human-readable summary of a fits.json dictionary."""
    print(f"{fits['n_runs']} runs, FLOP convention {fits['flop_convention']}, "
          f"{fits['n_bootstrap']} bootstrap resamples ({fits['ci_level']:.0%} intervals)")
    if fits.get("skipped"):
        print("skipped: " + ", ".join(f"{v} {k}" for k, v in fits["skipped"].items()))
    rows, notes = [], []
    for key in (*FRONTIER_METHODS, *LOSS_METHODS):
        f = fits.get(key, {})
        if not isinstance(f.get("a"), (int, float)) or not math.isfinite(f["a"]):
            notes.append(f"{key}: {f.get('error', 'fitted, but has no compute-optimal size')}"
                         if f else f"{key}: not fitted")
            continue
        rows.append(_frontier_row(key, f))
    print_table(rows, ["method", "a (N_opt ~ C^a)", "b (D_opt ~ C^b)", "N_opt at 1e21",
                       "residual sd"])
    for line in notes:
        print(line)
    a3 = fits.get("approach3", {})
    if "E" in a3:
        ci = a3.get("ci", {})
        print("approach 3: " + ", ".join(f"{k}={_fmt_ci(a3[k], ci.get(k))}"
                                         for k in ("E", "A", "B", "alpha", "beta")))
    rec = fits.get("recommended") or {}
    if rec.get("method"):
        sup = rec.get("supported_factor")
        print(f"recommended: {rec['method']} -- {rec.get('reason', '')}; supported "
              f"extrapolation: " + (f"{sup:g}x" if sup else "none shown (few budgets)"))
    ho = fits.get("holdout")
    if ho and "loss_error_pct" in ho:
        p = ho["predicted"][ho["method"]]
        print(f"holdout: budget {ho['budget']:.3g} ({ho['extrapolation']:.3g}x beyond the fit) "
              f"predicted N_opt {format_count(p['n_opt'])}, loss "
              f"{_fmt_ci(p['loss'], p.get('loss_ci'))} by {ho['method']}; best held-out run "
              f"reached {ho['achieved']['best_run']['loss']:.4g} -> error "
              f"{ho['loss_error_pct']:+.2f}%")
    elif ho and ho.get("error"):
        print(f"holdout: {ho['error']}")


def run(args) -> int:
    if (args.study is None) == (args.csv is None):
        raise ScalinglabError("give either a STUDY directory or --csv FILE")
    if args.bootstrap < 0:
        raise ScalinglabError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    data = load_study(args.study) if args.study else load_csv(args.csv)
    data = drop_worst(data, args.drop_worst)
    fits = {"source": str(args.study or args.csv)} | fit_data(
        data, n_boot=args.bootstrap, seed=args.seed, holdout=args.holdout_largest)
    out = Path(args.out) if args.out else (Path(args.study) / "fits.json" if args.study
                                           else Path("fits.json"))
    write_fits(out, fits)
    if args.json:
        print_json(fits)
    else:
        print_summary(fits)
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="fit scaling laws (Approaches 1-3, Kaplan) to a study")
    p.add_argument("study", nargs="?", help="study directory with study.csv (and runs/)")
    p.add_argument("--csv", help="CSV of runs: params, loss and tokens or flops")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (runs)")
    p.add_argument("--holdout-largest", action="store_true",
                   help="also fit without the largest budget and check the prediction for it")
    p.add_argument("--drop-worst", type=int, default=0,
                   help="drop the K runs with the largest loss first (Epoch's replication: 5)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", help="output path (default STUDY/fits.json, or ./fits.json)")
    p.add_argument("--json", action="store_true", help="print fits.json to stdout")
    p.set_defaults(func=run)
