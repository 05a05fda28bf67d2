"""``scalinglab compare-adaptation STUDY --task TASK --shots 0,1,5``: 0-shot, k-shot and
fine-tuned accuracy of every run of a study, against model size."""

from __future__ import annotations

from scalinglab.cli.common import print_json, print_table
from scalinglab.cli.eval import _ints
from scalinglab.units import format_count


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(args) -> int:
    from scalinglab.adapt.compare import compare_adaptation
    from scalinglab.adapt.finetune import FinetuneConfig

    cfg = FinetuneConfig().merge(args.overrides)
    runs = [r for r in (args.runs or "").split(",") if r.strip()] or None
    summary, path = compare_adaptation(args.study, args.task, _ints(args.shots), runs, cfg,
                                       progress=not args.json)
    if args.json:
        print_json(summary)
        return 0
    shots = [str(k) for k in summary["shots"]]
    rows = [{"run": r["run_id"], "params": format_count(r["params_total"]),
             **{f"{k}-shot": _f(r["shots"][k]) for k in shots},
             "fine-tuned": _f(r["finetuned"]), "gain": f"{r['finetune_gain']:+.3f}"}
            for r in summary["runs"]]
    print_table(rows, ["run", "params", *(f"{k}-shot" for k in shots), "fine-tuned", "gain"])
    print(f"{summary['task']} {summary['metric']}; chance {_f(summary['chance'])}; gain = "
          "fine-tuned minus the best prompted score")
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare-adaptation", help="0-shot vs k-shot vs fine-tuned accuracy by model size",
        description="For every finished run of a study (or --runs), evaluate a task 0- and "
        "k-shot and fine-tune on its training split; table, JSON and a figure of accuracy "
        "against model size. Resumable. Example: scalinglab compare-adaptation STUDY "
        "--task heldout_source --shots 0,1,5",
    )
    p.add_argument("study", help="study directory (with runs/)")
    p.add_argument("--task", required=True, help="a task with a training split")
    p.add_argument("--shots", default="0,1,5", help="prompted shot counts (default 0,1,5)")
    p.add_argument("--runs", help="comma-separated run ids (default: every finished run)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("overrides", nargs="*", help="FinetuneConfig overrides key=value")
    p.set_defaults(func=run)
