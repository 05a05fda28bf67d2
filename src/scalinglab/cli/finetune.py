"""``scalinglab finetune RUN --task TASK --out DIR [key=value ...]`` -> ``DIR/finetune.json``."""

from __future__ import annotations

from scalinglab.cli.common import print_json, print_table


def run(args) -> int:
    from scalinglab.adapt.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig().merge(args.overrides)
    results, path = finetune(args.run, args.task, args.out, cfg, tokenizer=args.tokenizer,
                             heldout=args.heldout, progress=not args.json)
    if args.json:
        print_json(results)
        return 0
    t, test = results["train"], results["test"]
    print_table([{"task": results["task"], "train": results["n_train"],
                  "valid": results["n_valid"], "test": test["n"],
                  "steps": f"{t['steps']}/{t['planned_steps']}", "best step": t["best_step"],
                  "acc": f"{test['acc']:.4f}",
                  "chance": "-" if results["chance"] is None else f"{results['chance']:.4f}"}],
                ["task", "train", "valid", "test", "steps", "best step", "acc", "chance"])
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune a run on a task's training split, score its test split",
        description="Supervised fine-tuning (loss on the answer given the prompt, early "
        "stopping on the validation split) with the pre-training trainer, then the test split "
        "scored as `scalinglab eval` does. Example: scalinglab finetune STUDY/runs/RUN "
        "--task heldout_source --out ft/RUN epochs=10 lr=1e-2",
    )
    p.add_argument("run", help="run directory (or its model.safetensors / a checkpoint)")
    p.add_argument("--task", required=True,
                   help="heldout_source, or a task YAML with train_data (and data = test)")
    p.add_argument("--out", required=True, help="fine-tuning run directory")
    p.add_argument("--tokenizer", help="tokenizer.json, or 'bytes' (default: the run's)")
    p.add_argument("--heldout", help="val_docs.jsonl for built-in tasks (default: the run's)")
    p.add_argument("--json", action="store_true", help="print finetune.json")
    p.add_argument("overrides", nargs="*",
                   help="FinetuneConfig overrides: epochs, batch_size, lr, patience, ...")
    p.set_defaults(func=run)
