"""``scalinglab allocate``: how to spend a budget, by the fitted and the published laws."""

from __future__ import annotations

from scalinglab.cli.common import print_json, print_table
from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import Fits, load_fits
from scalinglab.scaling.allocate import allocate, size_table
from scalinglab.units import format_count


def _number_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ScalinglabError(f"--sizes: expected comma-separated numbers, got {text!r}") from None


def _load_fits(path: str | None) -> Fits | None:
    if path is None:
        return None
    fits = load_fits(path)
    if not fits.methods:  # else the table shows the published laws alone, as without --fits
        why = "; ".join(fits.errors.values()) or "no fitted law in it"
        raise ScalinglabError(f"{path}: no usable law ({why})")
    return fits


def _ci(row: dict, key: str) -> str:
    ci = row.get(f"{key}_ci")
    return f" [{format_count(ci[0])}, {format_count(ci[1])}]" if ci and ci[0] else ""


def _loss(value, ci=None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci and ci[0] else "")


def _print_extrapolation(fits, rows: list[dict]) -> None:
    if fits is None:
        return
    factor = next((r["extrapolation"] for r in rows if r.get("extrapolation")), None)
    if factor is not None:
        sup = fits.supported_factor()
        print(f"extrapolation: {factor:.3g}x the largest fitted run's compute (the study's "
              "own backtest supports " + (f"{sup:.3g}x)" if sup else "no factor)"))
    if fits.recommended:
        print(f"recommended law: {fits.recommended} ({fits.recommendation.get('reason', '')})")


def run(args) -> int:
    fits = _load_fits(args.fits)
    if (args.budget is None) == (args.sizes is None):
        raise ScalinglabError("give either --budget C or --sizes N1,N2,...")
    if args.budget is not None:
        rows = allocate(args.budget, fits)
        if args.json:
            print_json({"budget": args.budget, "rows": rows})
            return 0
        print(f"compute budget C = {args.budget:.3g} FLOPs")
        _print_extrapolation(fits, rows)
        print_table([{"source": r["source"], "N_opt": format_count(r["n_opt"]) + _ci(r, "n_opt"),
                      "D_opt (tokens)": format_count(r["d_opt"]) + _ci(r, "d_opt"),
                      "tokens/param": f"{r['tokens_per_param']:.1f}",
                      "loss": _loss(r["loss"], r.get("loss_ci"))} for r in rows],
                    ["source", "N_opt", "D_opt (tokens)", "tokens/param", "loss"])
        for r in rows:
            for w in r.get("warnings", []):
                print(f"warning: {r['source']}: {w}")
        return 0
    rows = size_table(_number_list(args.sizes), fits)
    if args.json:
        print_json(rows)
        return 0
    print_table([{"source": r["source"], "parameters": format_count(r["params"]),
                  "FLOPs": f"{r['flops']:.3g}", "tokens": format_count(r["tokens"]),
                  "loss": _loss(r["loss"])} for r in rows],
                ["source", "parameters", "FLOPs", "tokens", "loss"])
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("allocate", help="compute-optimal N, D and loss for a budget")
    p.add_argument("--budget", type=float, help="training compute C in FLOPs")
    p.add_argument("--sizes", help="comma-separated model sizes: a Chinchilla Table 3 table")
    p.add_argument("--fits", help="fits.json from `scalinglab fit` (else published laws only)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
