"""``scalinglab toxicity RUN... --prompts FILE.jsonl`` -> ``RUN/toxicity.json`` (+ a PNG for
several runs): continuation toxicity as prompts grow toxic (RealToxicityPrompts / Gopher)."""

from __future__ import annotations

import os
from pathlib import Path

from scalinglab.cli.common import print_table
from scalinglab.eval.sampling import TOXICITY_SAMPLING, add_sampling_flags
from scalinglab.units import format_count


def run(args) -> int:
    """Analyze each run given (e.g. every run of a study: ``STUDY/runs/*``)."""
    from scalinglab.eval.sampling import sampling_from_args
    from scalinglab.eval.toxicity import (
        build_scorer,
        load_prompts,
        plot_toxicity,
        toxicity_run,
    )

    cfg = sampling_from_args(args)
    prompts, stats = load_prompts(args.prompts, args.limit)
    skipped = sum(stats.skipped.values())
    print(f"{len(prompts)} prompts from {args.prompts}" + (f" ({skipped} lines skipped)"
                                                           if skipped else ""))
    scorer = build_scorer(args.scorer)
    results = []
    for model in args.model:
        r, out = toxicity_run(model, prompts, stats, scorer, cfg, str(args.prompts),
                              tokenizer=args.tokenizer, device=args.device)
        results.append(r)
        print(f"\n{model} ({format_count(r['params_total'])} params, scorer {scorer.name})")
        print_table(_rows(r), ["prompt toxicity", "prompts", "continuation", "expected max",
                               "P(any >= .5)"])
        print(f"wrote {out}")
    if len(results) > 1:
        print(f"wrote {plot_toxicity(results, args.plot or _plot_path(args.model))}")
    return 0


def _rows(results: dict) -> list[dict]:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    last = results["bins"][-1]
    rows = [{"prompt toxicity": f"[{b['lo']:.2f}, {b['hi']:.2f}" + ("]" if b is last else ")"),
             "prompts": b["prompts"],
             "continuation": f(b["continuation_toxicity"]),
             "expected max": f(b["expected_max_toxicity"]),
             "P(any >= .5)": f(b["prob_any_toxic"])} for b in results["bins"]]
    o = results["overall"]
    rows.append({"prompt toxicity": "all", "prompts": o["prompts"],
                 "continuation": f(o["continuation_toxicity"]),
                 "expected max": f(o["expected_max_toxicity"]),
                 "P(any >= .5)": f(o["prob_any_toxic"])})
    return rows


def _plot_path(models: list[str]) -> Path:
    """``toxicity.png`` beside the runs' common directory (the study for ``STUDY/runs/*``)."""
    common = Path(os.path.commonpath([os.path.abspath(m) for m in models]))
    if common.is_file() or common.name == "checkpoints":
        common = common.parent
    return (common.parent if common.name == "runs" else common) / "toxicity.png"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "toxicity", help="toxicity of sampled continuations against prompt toxicity",
        description="Sample K continuations per prompt, score their toxicity and report it per "
        "prompt-toxicity bin (RealToxicityPrompts, Gopher). Example: scalinglab toxicity "
        "STUDY/runs/* --prompts prompts.jsonl --limit 500",
    )
    p.add_argument("model", nargs="+",
                   help="run directories, model.safetensors or checkpoints/step-N.pt files")
    p.add_argument("--prompts", required=True,
                   help="JSONL of {prompt: {text, toxicity}} or {text, toxicity}; 'hf' for "
                   "allenai/real-toxicity-prompts from the Hugging Face hub")
    add_sampling_flags(p, TOXICITY_SAMPLING)  # --samples --max-new-tokens --top-p ... --seed
    p.add_argument("--scorer", default="profanity-check",
                   choices=["profanity-check", "perspective"],
                   help="toxicity classifier (perspective needs PERSPECTIVE_API_KEY)")
    p.add_argument("--limit", type=int, default=0, help="first N prompts only")
    p.add_argument("--tokenizer", help="tokenizer.json, or 'bytes' (default: the run's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--plot", help="PNG path with several runs (default: beside the runs)")
    p.set_defaults(func=run)
