"""``scalinglab backtest``: how well each law, fitted on the cheaper runs, predicts the
expensive ones -- error and interval coverage against extrapolation factor."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from scalinglab.cli.common import print_json, print_table
from scalinglab.errors import ScalinglabError
from scalinglab.scaling.backtest import DEFAULT_FACTORS, DEFAULT_METHODS, backtest
from scalinglab.scaling.fitdata import load_csv, load_study


def _list(text: str, flag: str, cast=str) -> list:
    try:
        return [cast(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ScalinglabError(f"{flag}: expected a comma-separated list, got {text!r}") from None


def _where(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ScalinglabError(f"--where: expected COLUMN=VALUE, got {item!r}")
        out[key] = value
    return out


def _load(args):
    if (args.study is None) == (args.csv is None):
        raise ScalinglabError("give either a STUDY directory or --csv FILE")
    if args.study:
        if args.loss_column or args.where:
            raise ScalinglabError("--loss-column and --where apply to --csv only")
        return load_study(args.study)
    return load_csv(args.csv, loss_column=args.loss_column, where=_where(args.where))


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    return "-" if v is None else format(v, fmt)


def print_scores(rows: list[dict]) -> None:
    print_table([{"method": r["method"], "factor": f"{r['factor']:g}",
                  "held-out": r.get("n_heldout", "-"),
                  "median |err| %": _cell(r, "median_abs_err_pct", ".2f"),
                  "max |err| %": _cell(r, "max_abs_err_pct", ".2f"),
                  "coverage": _cell(r, "coverage", ".0%"),
                  "median width %": _cell(r, "median_width_pct", ".1f"),
                  "optimal-loss err %": ", ".join(f"{e:+.2f}" for e in r.get(
                      "optimal_loss_err_pct", [])) or "-"} for r in rows if "error" not in r],
                ["method", "factor", "held-out", "median |err| %", "max |err| %", "coverage",
                 "median width %", "optimal-loss err %"])
    for r in rows:
        if "error" in r:
            print(f"{r['method']} at {r['factor']:g}x: not fitted ({r['error']})")


def run(args) -> int:
    factors = _list(args.factors, "--factors", float)
    methods = _list(args.methods, "--methods")
    unknown = [m for m in methods if m not in (*DEFAULT_METHODS, "auto")]
    if unknown:
        raise ScalinglabError(f"--methods: unknown {', '.join(unknown)}; known: "
                              f"{', '.join(DEFAULT_METHODS)}, auto")
    if not factors or min(factors) <= 1:
        raise ScalinglabError(f"--factors must be numbers > 1, got {args.factors!r}")
    data = _load(args)
    bar = tqdm(total=len(factors), desc="backtest", unit="factor", disable=args.json or None)
    scores = backtest(data, factors, methods, by=args.split, n_boot=args.bootstrap,
                      seed=args.seed, progress=lambda f: bar.update(1))
    bar.close()
    if not scores:
        raise ScalinglabError(f"no factor in {args.factors} leaves >= 6 runs to fit and some "
                              f"to predict ({len(data)} runs)")
    rows = [s.summary() for s in scores]
    if data.skipped:
        print(f"skipped runs: {data.skipped}")
    if args.plot:
        from scalinglab.report.figures import backtest_figure, save

        save(backtest_figure(rows), Path(args.plot))
    if args.json:
        print_json({"n_runs": len(data), "split": args.split, "scores": rows,
                    "runs": {f"{s.method}@{s.factor:g}": s.runs() for s in scores
                             if s.error is None}})
        return 0
    print(f"{len(data)} runs; fit on {args.split} <= max / factor, predict the rest")
    print_scores(rows)
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("backtest", help="fit on cheap runs, predict expensive ones: "
                              "error and coverage against extrapolation factor")
    p.add_argument("study", nargs="?", help="study directory with study.csv")
    p.add_argument("--csv", help="CSV of runs: params, tokens (or flops), loss [unique_tokens]")
    p.add_argument("--split", choices=["compute", "params"], default="compute",
                   help="hold out by compute (default) or by parameter count")
    p.add_argument("--factors", default=",".join(str(f) for f in DEFAULT_FACTORS),
                   help="extrapolation factors k: fit on runs with x <= x_max / k")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="laws to compare")
    p.add_argument("--loss-column", help="CSV column to use as the loss (default: loss)")
    p.add_argument("--where", nargs="+", metavar="COL=VALUE",
                   help="keep only CSV rows with these values (e.g. dataset=rpj)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples per fit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="write the error-vs-factor figure (PNG)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
