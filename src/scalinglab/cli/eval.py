"""``scalinglab eval RUN|CHECKPOINT --tasks ... --shots 0,1,5`` -> ``RUN/results.json``."""

from __future__ import annotations

import sys

from scalinglab.cli.common import print_json, print_table
from scalinglab.errors import ScalinglabError


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ScalinglabError(f"--shots {text!r}: expected comma-separated integers") from None
    if not values or any(v < 0 for v in values):
        raise ScalinglabError(f"--shots {text!r}: expected non-negative integers")
    return values


def run(args) -> int:
    """Evaluate each model given (e.g. every run of a study: ``STUDY/runs/*``)."""
    from scalinglab.eval.api import evaluate_run
    from scalinglab.eval.runner import truncation_warning

    if args.out and len(args.model) > 1:
        raise ScalinglabError("--out names one results file: give one model with it")
    tasks = [t for t in args.tasks.split(",") if t.strip()]
    for model in args.model:
        results, out = evaluate_run(
            model, tasks, _ints(args.shots), tokenizer=args.tokenizer, heldout=args.heldout,
            index=args.index, seed=args.seed, limit=args.limit, device=args.device,
            batch_tokens=args.batch_tokens, out=args.out, progress=not args.json)
        if args.json:
            print_json(results)
        else:
            print_table(_rows(results), ["task", "shots", "n", "truncated", "metric", "value"])
            print(f"wrote {out}")
        line = truncation_warning(results)
        if line:
            print(f"warning: {model}: {line}", file=sys.stderr)
    return 0


def _rows(results: dict) -> list[dict]:
    rows = []
    for name, task in results["tasks"].items():
        for k, m in task["shots"].items():
            for metric in ("acc", "acc_norm", "perplexity", "bits_per_byte"):
                if metric in m:
                    rows.append({"task": name, "shots": k, "n": m["n"],
                                 "truncated": m.get("truncated", ""), "metric": metric,
                                 "value": f"{m[metric]:.4f}"})
    return rows


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a model zero/few-shot and by bits per byte",
        description="Evaluate a run or checkpoint. Example: scalinglab eval runs/tiny "
        "--tasks heldout_bpb,heldout_continuation,piqa=data/piqa.jsonl --shots 0,1,5; "
        "several runs at once: scalinglab eval STUDY/runs/* --tasks ...",
    )
    p.add_argument("model", nargs="+",
                   help="run directories, model.safetensors or checkpoints/step-N.pt files")
    p.add_argument("--tasks", required=True,
                   help="comma-separated: built-in NAME, NAME=FILE.jsonl, or TASK.yaml")
    p.add_argument("--shots", default="0", help="shot counts, e.g. 0,1,5 (default 0)")
    p.add_argument("--tokenizer", help="tokenizer.json, or 'bytes' (default: the run's)")
    p.add_argument("--heldout", help="val_docs.jsonl for built-in tasks (default: the run's)")
    p.add_argument("--index", help="n-gram index: also score clean and dirty subsets")
    p.add_argument("--limit", type=int, default=0, help="at most N examples per task")
    p.add_argument("--seed", type=int, default=0, help="seeds shots and built-in tasks")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-tokens", type=int, default=8192, help="padded tokens per forward")
    p.add_argument("--out", help="results file (default RUN/results.json)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=run)
