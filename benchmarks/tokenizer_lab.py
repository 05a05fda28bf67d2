"""Multi-word vs ordinary BPE on the default corpus: token saving and tokenisation speed.

    PYTHONPATH=src python benchmarks/tokenizer_lab.py [--vocab-size 16384] [CORPUS.jsonl ...]

Trains both tokenizers at the same vocabulary size on ~90% of the documents and compares them
on the held-out ~10% (split by a hash of the text): tokens, bytes/token, the multi-word
tokenizer's saving (goal: >= 15% fewer tokens), training time, and encoding docs/s and MB/s
(``encode_batch``; HF tokenizers uses all cores unless RAYON_NUM_THREADS is set).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _corpus import load_texts, split_heldout

from scalinglab.cli.common import print_table
from scalinglab.tokenizer.compare import compare
from scalinglab.tokenizer.train import TokenizerConfig, train_tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="*")
    p.add_argument("--vocab-size", type=int, default=16384)
    p.add_argument("--stage1-fraction", type=float, default=0.5)
    args = p.parse_args()
    train, held = split_heldout(load_texts(args.corpus))
    print(f"train {len(train)} docs, held-out {len(held)} docs")
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for multiword in (False, True):
            cfg = TokenizerConfig(vocab_size=args.vocab_size, multiword=multiword,
                                  stage1_fraction=args.stage1_fraction)
            start = time.perf_counter()
            tok = train_tokenizer(train, cfg)
            name = "multiword" if multiword else "bpe"
            print(f"trained {name}: {time.perf_counter() - start:.1f} s")
            paths.append(str(Path(tmp) / f"{name}-{args.vocab_size}.json"))
            tok.save(paths[-1])
        rows = compare(paths, held)
    print_table([{
        "tokenizer": Path(r["tokenizer"]).stem, "vocab": r["vocab_size"], "tokens": r["tokens"],
        "bytes/token": f"{r['bytes_per_token']:.3f}", "tokens/doc": f"{r['tokens_per_doc']:.1f}",
        "saving": f"{100 * r['saving_vs_first']:.1f}%", "MB/s": f"{r['encode_mb_per_s']:.2f}",
        "docs/s": f"{r['encode_mb_per_s'] * 1e6 / (r['bytes'] / r['documents']):.0f}",
    } for r in rows], ["tokenizer", "vocab", "tokens", "bytes/token", "tokens/doc", "saving",
                       "MB/s", "docs/s"])
    saving = rows[1]["saving_vs_first"]
    print(f"multi-word saving: {100 * saving:.1f}% fewer tokens "
          f"(goal >= 15%: {'met' if saving >= 0.15 else 'NOT met'})")


if __name__ == "__main__":
    main()
