"""``scalinglab tokenizer train|compare``: byte-level / multi-word BPE and their comparison."""

from __future__ import annotations

import time

from scalinglab.cli.common import print_json, print_table
from scalinglab.tokenizer.compare import compare
from scalinglab.tokenizer.corpus import read_texts
from scalinglab.tokenizer.train import TokenizerConfig, save_tokenizer, train_tokenizer


def _config(args) -> TokenizerConfig:
    cfg = TokenizerConfig.from_file(args.config) if args.config else TokenizerConfig()
    if args.vocab_size is not None:
        cfg.vocab_size = args.vocab_size
    if args.multiword:
        cfg.multiword = True
    cfg.progress = not args.quiet
    return cfg.merge(args.overrides)


def run_train(args) -> int:
    cfg = _config(args)
    texts = list(read_texts(args.corpus, args.text_field))
    start = time.perf_counter()
    tok = train_tokenizer(texts, cfg)
    secs = time.perf_counter() - start
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    stats = {"config": cfg.as_dict(), "corpus": list(args.corpus), "documents": len(texts),
             "bytes": nbytes, "vocab_size": tok.get_vocab_size(), "train_seconds": secs}
    save_tokenizer(tok, args.out, stats)
    mode = "multi-word" if cfg.multiword else "byte-level"
    print(f"{mode} BPE, {tok.get_vocab_size()} tokens, trained on {len(texts)} documents "
          f"({nbytes / 1e6:.1f} MB) in {secs:.1f} s -> {args.out}")
    return 0


def run_compare(args) -> int:
    rows = compare(args.tokenizers, list(read_texts(args.text, args.text_field)))
    if args.task:
        _add_context_fit(args, rows)
    if args.json:
        print_json(rows)
        return 0
    print_table([{
        "tokenizer": r["tokenizer"], "vocab": r["vocab_size"], "docs": r["documents"],
        "tokens": r["tokens"], "bytes/token": f"{r['bytes_per_token']:.3f}",
        "tokens/doc": f"{r['tokens_per_doc']:.1f}", "saving": f"{100 * r['saving_vs_first']:.1f}%",
        "MB/s": f"{r['encode_mb_per_s']:.2f}",
    } for r in rows], ["tokenizer", "vocab", "docs", "tokens", "bytes/token", "tokens/doc",
                       "saving", "MB/s"])
    return 0


def _add_context_fit(args, rows: list[dict]) -> None:
    """Per tokenizer: how many of the task's solved examples fit in each context length."""
    from scalinglab.cli.eval import _ints
    from scalinglab.eval.context_fit import examples_per_context
    from scalinglab.eval.tasks import resolve_task
    from scalinglab.eval.tokenizer import HFTokenizer

    task = resolve_task(args.task, args.heldout, args.seed)
    contexts = _ints(args.context)
    for r in rows:
        r["in_context"] = examples_per_context(HFTokenizer(r["tokenizer"]).encode, task,
                                               contexts, args.shots, seed=args.seed)
    if args.json:
        return
    print_table([{"tokenizer": r["tokenizer"], "vocab": r["vocab_size"],
                  "tokens/shot": f"{r['in_context']['shot_tokens']:.1f}",
                  f"{args.shots}-shot tokens": f"{r['in_context']['prompt_tokens']:.1f}",
                  **{f"fit in {L}": f"{r['in_context']['fit'][str(L)]:.1f}" for L in contexts},
                  **{f"{args.shots}-shot > {L}":
                     f"{100 * r['in_context']['truncated'][str(L)]:.0f}%" for L in contexts}}
                 for r in rows],
                ["tokenizer", "vocab", "tokens/shot", f"{args.shots}-shot tokens",
                 *(f"fit in {L}" for L in contexts),
                 *(f"{args.shots}-shot > {L}" for L in contexts)])
    print(f"task {task.spec.name}: solved examples that fit per context (mean over "
          f"{rows[0]['in_context']['examples']} test examples); share of {args.shots}-shot "
          "prompts longer than the context")
    print()


def register(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="train and compare BPE tokenizers")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train byte-level (or multi-word) BPE on a corpus")
    t.add_argument("--corpus", nargs="+", required=True,
                   help="text files, JSONL files (text field) or directories of them")
    t.add_argument("--vocab-size", type=int, default=None, help="final vocabulary size")
    t.add_argument("--multiword", action="store_true", help="let merges cross whitespace")
    t.add_argument("--out", required=True, help="tokenizer.json to write")
    t.add_argument("--config", help="TokenizerConfig YAML/JSON")
    t.add_argument("--text-field", default="text", help="JSONL field holding the text")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("overrides", nargs="*", help="config overrides key=value")
    t.set_defaults(func=run_train)
    c = sub.add_parser("compare", help="bytes/token and tokens/doc on held-out text")
    c.add_argument("--tokenizers", nargs="+", required=True, help="tokenizer.json files")
    c.add_argument("--text", nargs="+", required=True, help="held-out text / JSONL / directory")
    c.add_argument("--text-field", default="text", help="JSONL field holding the text")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.add_argument("--task", help="also count a task's solved examples per context "
                   "(e.g. heldout_source, with --heldout SHARDS/val_docs.jsonl)")
    c.add_argument("--heldout", help="val_docs.jsonl for built-in tasks")
    c.add_argument("--context", default="128,2048", help="context lengths (default 128,2048)")
    c.add_argument("--shots", type=int, default=5, help="k of the k-shot prompts (default 5)")
    c.add_argument("--seed", type=int, default=0, help="seeds the shots, as in eval")
    c.set_defaults(func=run_compare)
