"""``scalinglab demo``: the main job, the whole loop on CPU in under 10 minutes (2 cores).

Default corpus -> prepare -> tokenizer -> shards -> IsoFLOP sweep of the smaller budgets ->
forecast of the largest budget -> its runs: the forecast optimum vs a model 4x
larger -> fits with bootstrap and the 8x trust check -> allocation for 10x and 100x
the largest budget -> report. Re-running resumes (see ``scalinglab.pipeline.demo``).
"""

from __future__ import annotations


def run(args) -> int:
    from scalinglab.cli.common import print_json
    from scalinglab.pipeline.demo import DemoConfig, format_summary, run_demo

    cfg = DemoConfig.from_file(args.config) if args.config else DemoConfig()
    cfg = cfg.merge({"out": args.out} if args.out else {}).merge(list(args.overrides))
    summary = run_demo(cfg)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run the small end-to-end scaling study (the main job)",
        description="Example: scalinglab demo --out studies/demo workers=2 bootstrap=1000. "
        "Re-running the same command resumes.",
    )
    p.add_argument("--out", help="where the demo writes everything (default studies/demo)")
    p.add_argument("--config", help="YAML/JSON DemoConfig")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("overrides", nargs="*",
                   help="key=value DemoConfig overrides, e.g. 'budgets=[1e11,3e11,9e11]'")
    p.set_defaults(func=run)
