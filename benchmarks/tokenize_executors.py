"""``data tokenize`` on the whole default corpus: one process vs datatrove ``local`` tasks.

The corpus is prepared once (in process, MinHash off to save time, ``shard_bytes`` small
enough for several ``documents-NNNNN.jsonl`` files: tasks take whole files), a 4096-token
byte-level BPE is trained once on it; then per configuration, in a fresh output directory:
wall time of ``tokenize_corpus`` (incl. held-out documents and the training n-gram index),
docs/s, MB/s and tokens/s, and whether every shard, header and ``val_docs.jsonl`` is
byte-identical to the one-process run's. Medians over the repeats, with the 1-minute load
average per run.

Usage:  python benchmarks/tokenize_executors.py [--repeats 3] [--tasks 1 2 4] [--workers 2]
        [--shard-mb 2] [--out /tmp/tok-bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from scalinglab.data.pipeline import PrepareConfig, prepare
from scalinglab.data.sources import SourceConfig, SourceKind
from scalinglab.data.tokenize import TokenizeConfig, tokenize_corpus


def corpus_and_tokenizer(root: Path, shard_mb: float) -> tuple[Path, Path]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from scalinglab.data.document import read_jsonl_docs

    corpus = root / "corpus"
    # near-dedup off: only to make the corpus faster (tokenize reads whatever is there)
    prepare(PrepareConfig(sources=[SourceConfig(kind=SourceKind.default)], out=str(corpus),
                          progress=False, shard_bytes=int(shard_mb * 1e6)).merge(
                              ["dedup.near=false"]))
    tok_path = root / "tokenizer.json"
    if not tok_path.exists():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        texts = (d.text for f in sorted(corpus.glob("documents-*.jsonl"))
                 for d in read_jsonl_docs(f))
        tok.train_from_iterator(texts, trainer)
        tok.save(str(tok_path))
    return corpus, tok_path


def shards(d: Path) -> dict[str, bytes]:
    names = [*d.glob("train-*"), *d.glob("val-*"), d / "val_docs.jsonl"]
    return {p.name: p.read_bytes() for p in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--workers", type=int, default=2, help="tasks running at once (cores)")
    ap.add_argument("--shard-mb", type=float, default=2.0)
    ap.add_argument("--out", default="/tmp/tok-bench")
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    corpus, tok = corpus_and_tokenizer(root, args.shard_mb)
    n_files = len(list(corpus.glob("documents-*.jsonl")))
    configs = [("inprocess", {})] + [(f"local tasks={t}", {"executor": "local", "tasks": t,
                                                           "workers": min(t, args.workers)})
                                     for t in args.tasks]
    ref, rows = None, {name: [] for name, _ in configs}
    for rep in range(args.repeats):
        for name, kw in configs:
            out = root / name.replace(" ", "_").replace("=", "")
            shutil.rmtree(out, ignore_errors=True)
            cfg = TokenizeConfig(corpus=str(corpus), tokenizer=str(tok), out=str(out),
                                 progress=False).merge(kw)
            start = time.perf_counter()
            meta = tokenize_corpus(cfg)
            secs = time.perf_counter() - start
            sp = meta["splits"]
            docs = sp["train"]["docs"] + sp["val"]["docs"]
            mb = (sp["train"]["bytes"] + sp["val"]["bytes"]) / 1e6
            tokens = sp["train"]["tokens"] + sp["val"]["tokens"]
            if ref is None:
                ref = shards(out)
            ok = shards(out) == ref
            rows[name].append((secs, docs / secs, mb / secs, tokens / secs, ok))
            print(f"rep {rep} {name:<16} {secs:6.1f} s {docs / secs:8.1f} docs/s "
                  f"{mb / secs:6.3f} MB/s {tokens / secs:9.0f} tokens/s  same shards: {ok}  "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"median of {args.repeats} ({n_files} input files, {docs} docs, {mb:.1f} MB, "
          f"{tokens} tokens):")
    for name, rs in rows.items():
        med = [statistics.median(r[k] for r in rs) for k in range(4)]
        print(f"  {name:<16} {med[0]:6.1f} s {med[1]:8.1f} docs/s {med[2]:6.3f} MB/s "
              f"{med[3]:9.0f} tokens/s  same shards: {all(r[4] for r in rs)}")


if __name__ == "__main__":
    main()
