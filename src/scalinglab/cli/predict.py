"""``scalinglab predict``: the loss of runs of N parameters on D tokens, with a 95% predictive
interval, from a study's fits.json."""

from __future__ import annotations

import numpy as np

from scalinglab.cli.common import print_json, print_table
from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import LOSS_METHODS, load_fits
from scalinglab.laws.forecast import forecast_warnings, predict
from scalinglab.scaling.fitdata import load_csv
from scalinglab.units import format_count


def _numbers(values: list[str] | None, flag: str) -> list[float]:
    out = []
    for v in values or []:
        for x in v.split(","):
            try:
                f = float(x)
            except ValueError:
                raise ScalinglabError(f"{flag}: not a number: {x!r}") from None
            if not f > 0 or not np.isfinite(f):
                raise ScalinglabError(f"{flag}: must be positive, got {x}")
            out.append(f)
    return out


def _points(args) -> tuple[list[float], list[float], np.ndarray | None]:
    if args.csv:
        if args.params or args.tokens:
            raise ScalinglabError("give either --params/--tokens or --csv, not both")
        data = load_csv(args.csv, require_loss=False)
        return list(data.params), list(data.tokens), data.unique_tokens
    n, d = _numbers(args.params, "--params"), _numbers(args.tokens, "--tokens")
    if not n or not d:
        raise ScalinglabError("give --params N... and --tokens D... (or --csv FILE)")
    if len(n) != len(d) and 1 not in (len(n), len(d)):
        raise ScalinglabError(f"--params has {len(n)} values and --tokens {len(d)}: give "
                              "equally many (or one of either)")
    n, d = np.broadcast_arrays(np.array(n), np.array(d))
    return list(n), list(d), None


def run(args) -> int:
    fits = load_fits(args.fits)
    n, d, unique = _points(args)
    method, preds = predict(fits, n, d, args.method, unique)
    if args.json:
        print_json({"method": method, "predictions": [
            {"params": p.params, "tokens": p.tokens, "loss": p.loss, "lo": p.lo, "hi": p.hi,
             "extrapolation": p.extrapolation} for p in preds]})
        return 0
    why = " (recommended by the study's backtest)" if method == fits.recommended else ""
    print(f"method: {method}{why}; 95% predictive intervals")
    print_table([{"params": format_count(p.params), "tokens": format_count(p.tokens),
                  "loss": f"{p.loss:.4f}", "95% interval": f"{p.lo:.4f} .. {p.hi:.4f}",
                  "extrapolation": "-" if p.extrapolation is None else f"{p.extrapolation:.3g}x"}
                 for p in preds], ["params", "tokens", "loss", "95% interval", "extrapolation"])
    for p in preds:
        for w in forecast_warnings(fits, fits.k * p.params * p.tokens, p.params, p.tokens):
            print(f"warning: N={format_count(p.params)} D={format_count(p.tokens)}: {w}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predicted loss of (N, D) runs with 95%% intervals")
    p.add_argument("--fits", required=True, help="fits.json from `scalinglab fit`")
    p.add_argument("--params", nargs="+", help="parameter counts (space or comma separated)")
    p.add_argument("--tokens", nargs="+", help="token counts, one per --params (or one)")
    p.add_argument("--csv", help="CSV with columns params and tokens (or flops)")
    p.add_argument("--method", choices=LOSS_METHODS,
                   help="the law to use (default: the one fits.json recommends)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
