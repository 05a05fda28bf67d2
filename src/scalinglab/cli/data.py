"""``scalinglab data fetch-default | prepare | tokenize``: raw text -> clean corpus -> shards."""

from __future__ import annotations

from scalinglab.cli.common import print_json


def _source(spec: str):
    """``--source`` value: ``default``, a path/glob, ``hf:DATASET`` (a hub name or a
    ``save_to_disk`` directory), each optionally prefixed by ``NAME=`` and a path optionally
    followed by ``:KIND`` (text, jsonl, parquet, hf) to set the reader, e.g. ``docs=rst/:text``."""
    from scalinglab.data.sources import SourceConfig, SourceKind

    name, sep, path = spec.partition("=")
    if not (sep and name and "/" not in name):
        name, path = "", spec
    if path == "default":
        return SourceConfig(kind=SourceKind.default)
    if path.startswith("hf:"):
        return SourceConfig(path=path[3:], kind=SourceKind.hf, name=name)
    head, colon, kind = path.rpartition(":")
    if colon and head and kind in {k.value for k in SourceKind} - {"auto", "default"}:
        return SourceConfig(path=head, name=name, kind=SourceKind(kind))
    return SourceConfig(path=path, name=name)


def run_fetch(args) -> int:
    from scalinglab.data.default_corpus import fetch_default_corpus

    corpus = fetch_default_corpus(args.cache_dir, force=args.force)
    if args.json:
        print_json({"path": str(corpus.path), **corpus.manifest})
    else:
        m = corpus.manifest
        print(f"default corpus {corpus.path}: {m['documents']} documents, "
              f"{m['bytes'] / 1e6:.1f} MB ("
              + ", ".join(f"{k} {v['documents']} docs" for k, v in m["sources"].items()) + ")")
    return 0


def run_prepare(args) -> int:
    from scalinglab.data.pipeline import PrepareConfig, prepare

    cfg = PrepareConfig.from_file(args.config) if args.config else PrepareConfig()
    flags: dict = {"progress": not args.quiet}
    if args.out:
        flags["out"] = args.out
    cfg = cfg.merge(flags).merge(list(args.overrides))
    if args.source:
        cfg.sources = [_source(s) for s in args.source]
    stats = prepare(cfg)
    if args.json:
        print_json(stats)
        return 0
    if "launched" in stats:  # executor=slurm: the jobs run later; stats.json comes last
        print(f"corpus {cfg.out}: launched {stats['launched']} jobs {stats['stages']} "
              f"(last job {stats['job_id']}; logs {stats['logs']})")
        return 0
    out = stats["output"]
    print(f"corpus {cfg.out}: {out['documents']} documents, {out['bytes'] / 1e6:.2f} MB "
          f"(stats: {cfg.out}/stats.json)")
    for step in stats["steps"]:
        drops = ", ".join(f"{r} {d['docs']}" for r, d in step["dropped"].items()) or "none"
        print(f"  {step['name']}: {step['in']['docs']} -> {step['out']['docs']} docs "
              f"(dropped: {drops})")
    for name, m in stats["mixture"].items():
        print(f"  mixture {name}: weight {m['weight']:.3f}, {m['epochs']:.2f} epochs")
    from scalinglab.data.source_summary import format_summary, source_summary

    print("\n".join(format_summary(source_summary(stats))))
    return 0


def run_tokenize(args) -> int:
    from scalinglab.data.tokenize import TokenizeConfig, tokenize_corpus

    cfg = TokenizeConfig.from_file(args.config) if args.config else TokenizeConfig()
    flags = {"corpus": args.corpus, "tokenizer": args.tokenizer, "out": args.out}
    cfg = cfg.merge({k: v for k, v in flags.items() if v is not None})
    cfg = cfg.merge({"progress": not args.quiet}).merge(list(args.overrides))
    meta = tokenize_corpus(cfg)
    if args.json:
        print_json(meta)
        return 0
    s = meta["splits"]
    rate = f"{meta['tokens_per_s']:,.0f} tokens/s" if meta["tokens_per_s"] else "resumed"
    print(f"shards {cfg.out}: train {s['train']['tokens']:,} tokens / {s['train']['docs']} docs, "
          f"val {s['val']['tokens']:,} tokens / {s['val']['docs']} docs, {meta['dtype']}, "
          f"{meta['bytes_per_token']:.2f} bytes/token, {rate}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="corpus: fetch the default corpus, prepare, tokenize")
    sub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    f = sub.add_parser("fetch-default", help="fetch and cache the default public-domain corpus")
    f.add_argument("--cache-dir", help="cache directory (default ~/.cache/scalinglab/corpus "
                   "or $SCALINGLAB_CORPUS_DIR)")
    f.add_argument("--force", action="store_true", help="fetch again even if cached")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run_fetch)

    pr = sub.add_parser(
        "prepare", help="read sources, filter, mix and write a clean corpus",
        description="Example: scalinglab data prepare --source default --out corpus "
        "quality.min_words=100. Re-running the same command resumes.")
    pr.add_argument("--source", action="append", help="'default', a file/dir/glob or "
                    "hf:DATASET, optionally NAME=... and a path optionally :KIND (text, jsonl, "
                    "parquet, hf); repeatable; replaces the config's sources")
    pr.add_argument("--out", help="corpus directory")
    pr.add_argument("--config", help="YAML/JSON PrepareConfig")
    pr.add_argument("--json", action="store_true", help="print the stats as JSON")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.add_argument("overrides", nargs="*", help="key=value, e.g. repetition.enabled=false")
    pr.set_defaults(func=run_prepare)

    t = sub.add_parser(
        "tokenize", help="tokenize a prepared corpus into train/val token shards",
        description="Example: scalinglab data tokenize --corpus corpus --tokenizer "
        "tok/tokenizer.json --out shards val_fraction=0.02")
    t.add_argument("--corpus", help="directory written by `data prepare`")
    t.add_argument("--tokenizer", help="HF tokenizers tokenizer.json (with <|endoftext|>)")
    t.add_argument("--out", help="shard directory")
    t.add_argument("--config", help="YAML/JSON TokenizeConfig")
    t.add_argument("--json", action="store_true", help="print the stats as JSON")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("overrides", nargs="*", help="key=value, e.g. val_fraction=0.02 seed=1")
    t.set_defaults(func=run_tokenize)
