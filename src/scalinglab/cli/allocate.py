"""``scalinglab allocate``: how to spend a budget, by the fitted and the published laws."""

from __future__ import annotations

from scalinglab.cli.common import format_count, print_json, print_table
from scalinglab.errors import ScalinglabError
from scalinglab.scaling.allocate import allocate, size_table
from scalinglab.scaling.fits_io import read_fits


def _number_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ScalinglabError(f"--sizes: expected comma-separated numbers, got {text!r}") from None


def _load_fits(path: str | None) -> dict | None:
    return None if path is None else read_fits(path)


def _ci(row: dict, key: str) -> str:
    ci = row.get(f"{key}_ci")
    return f" [{format_count(ci[0])}, {format_count(ci[1])}]" if ci and ci[0] else ""


def _loss(value, ci=None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci and ci[0] else "")


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
        print_table([{"source": r["source"], "N_opt": format_count(r["n_opt"]) + _ci(r, "n_opt"),
                      "D_opt (tokens)": format_count(r["d_opt"]) + _ci(r, "d_opt"),
                      "tokens/param": f"{r['tokens_per_param']:.1f}",
                      "loss": _loss(r["loss"], r.get("loss_ci"))} for r in rows],
                    ["source", "N_opt", "D_opt (tokens)", "tokens/param", "loss"])
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
