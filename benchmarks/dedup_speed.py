"""Docs/s and MB/s of exact dedup, MinHash dedup, decontamination and the 13-gram index.

    PYTHONPATH=src python benchmarks/dedup_speed.py [CORPUS.jsonl ...]

Without arguments it runs on the default corpus (Shakespeare + Milton + KJV, ~15 MB). The
decontamination uses 1000 items sampled from the corpus itself as a stand-in evaluation set
(so there is contamination to cut); its time includes the frequency scan. Single process;
set OMP_NUM_THREADS=1 for stable figures.
"""

from __future__ import annotations

import random
import sys
import time

from _corpus import load_texts

from scalinglab.data.document import Document
from scalinglab.data.ngram_index import NgramIndex
from scalinglab.data.steps.decontam import DecontamConfig, Decontaminate
from scalinglab.data.steps.dedup import ExactDedup, MinHashDedup


def _timed(name: str, fn, texts: list[str]) -> None:
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    start = time.perf_counter()
    result = fn()
    secs = time.perf_counter() - start
    print(f"{name:<22} {len(texts) / secs:9.0f} docs/s {nbytes / 1e6 / secs:7.2f} MB/s "
          f"({secs:.2f} s) {result}")


def main() -> None:
    texts = load_texts(sys.argv[1:])
    docs = [Document(t, f"d{i}") for i, t in enumerate(texts)]
    print(f"corpus: {len(texts)} documents, {sum(map(len, texts)) / 1e6:.1f} M characters")
    exact = ExactDedup()
    _timed("exact dedup", lambda: f"kept {sum(1 for _ in exact.run(docs))}", texts)
    near = MinHashDedup()
    _timed("minhash dedup", lambda: f"kept {sum(1 for _ in near.run(docs))}", texts)
    rng = random.Random(0)
    items = []
    for t in rng.sample(texts, min(1000, len(texts))):
        words = t.split()
        start = rng.randrange(max(len(words) - 40, 1))
        items.append(" ".join(words[start : start + 40]))
    decontam = Decontaminate(DecontamConfig(), sets={"sampled": items})
    _timed("decontaminate", lambda: f"out {sum(1 for _ in decontam.run(docs))} docs", texts)
    print("  ", decontam.report(), {k: v for k, v in decontam.stats.as_dict().items()
                                     if k.startswith(("contaminated", "dropped"))})
    _timed("13-gram index build", lambda: f"{len(NgramIndex.build(texts).table(13)[0])} grams",
           texts)


if __name__ == "__main__":
    main()
