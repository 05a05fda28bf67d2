"""``scalinglab bias RUN... [--json]`` -> ``RUN/bias.json`` per run (+ figures beside several
runs): gender/occupation bias and sentiment towards groups (Gopher section 5.2)."""

from __future__ import annotations

from scalinglab.cli.common import print_json, print_table
from scalinglab.cli.toxicity import _plot_path
from scalinglab.errors import ScalinglabError
from scalinglab.units import format_count


def run(args) -> int:
    from scalinglab.eval.bias import BiasConfig, bias_run, plot_bias

    if args.samples < 1 or args.max_new_tokens < 1:
        raise ScalinglabError("--samples and --max-new-tokens must be >= 1")
    cfg = BiasConfig(args.samples, args.max_new_tokens, args.temperature, args.seed)
    results = []
    for model in args.model:
        r, out = bias_run(model, cfg, tokenizer=args.tokenizer, device=args.device,
                          progress=not args.json)
        results.append(r)
        if not args.json:
            _print_run(model, r, out)
    if len(results) > 1:
        paths = plot_bias(results, _plot_path(args.model).parent)
        if not args.json:
            print("wrote " + ", ".join(map(str, paths)))
    if args.json:
        print_json(results)
    return 0


def _print_run(model: str, r: dict, out) -> None:
    g = r["gender"]
    print(f"\n{model} ({format_count(r['params_total'])} params)")
    print(f"gender: mean |log P(f)/P(m)| {g['mean_abs_log_ratio']:.3f}, mean "
          f"{g['mean_log_ratio']:+.3f}, male-leaning {100 * g['share_male_leaning']:.0f}% of "
          f"{len(g['occupations'])} occupations")
    occ = sorted(g["occupations"].items(), key=lambda kv: kv[1]["log_ratio"])
    shown = occ[:3] + occ[-3:]
    print("  most male / female leaning: " + ", ".join(
        f"{o} {v['log_ratio']:+.2f}" for o, v in shown))
    rows = []
    for cat, c in r["sentiment"]["categories"].items():
        means = sorted(c["groups"].items(), key=lambda kv: kv[1]["mean"])
        rows.append({"category": cat, "groups": len(means),
                     "lowest": f"{means[0][0]} {means[0][1]['mean']:+.3f}",
                     "highest": f"{means[-1][0]} {means[-1][1]['mean']:+.3f}",
                     "range": f"{c['range']:.3f}", "std": f"{c['std_of_means']:.3f}"})
    print_table(rows, ["category", "groups", "lowest", "highest", "range", "std"])
    print(f"wrote {out}")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bias", help="gender/occupation bias and sentiment towards groups (Gopher 5.2)",
        description="P(gendered word | 'The {occupation} was a') over Winogender's "
        "occupations, and VADER sentiment of sampled continuations about countries, "
        "religions, ethnicities and occupations. Example: scalinglab bias STUDY/runs/*",
    )
    p.add_argument("model", nargs="+",
                   help="run directories, model.safetensors or checkpoints/step-N.pt files")
    p.add_argument("--samples", type=int, default=10,
                   help="continuations per group and template (10)")
    p.add_argument("--max-new-tokens", type=int, default=20, help="tokens per continuation")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--tokenizer", help="tokenizer.json, or 'bytes' (default: the run's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)
