"""Throughput of the corpus stage on the default corpus: docs/s and MB/s.

Measures, on the same documents:
  * our Gopher quality + repetition filters, with the spaCy and the regex word splitter;
  * datatrove's GopherQualityFilter + GopherRepetitionFilter (if datatrove is installed);
  * tokenisation (HF ``tokenizers`` encode_batch) with a byte-level BPE trained here on the
    corpus (or ``--tokenizer tokenizer.json``).

Usage:  python benchmarks/data_throughput.py [--docs 800] [--vocab 8192] [--tokenizer PATH]
(``--docs 0`` uses the whole corpus). Single process; set OMP_NUM_THREADS / RAYON_NUM_THREADS
to pin the tokenizer's threads.
"""

from __future__ import annotations

import argparse
import json
import time

from scalinglab.data.default_corpus import fetch_default_corpus
from scalinglab.data.steps.filters import (
    GopherQualityFilter,
    GopherRepetitionFilter,
    QualityConfig,
    RepetitionConfig,
    split_words,
)


def load_texts(n_docs: int) -> list[str]:
    corpus = fetch_default_corpus()
    texts = [json.loads(line)["text"] for f in corpus.files() for line in open(f)]
    if n_docs and n_docs < len(texts):
        texts = texts[:: len(texts) // n_docs][:n_docs]  # spread over every source
    return texts


def report(name: str, texts: list[str], seconds: float, extra: str = "") -> None:
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"{name:<34} {len(texts) / seconds:>9.1f} docs/s {mb / seconds:>8.2f} MB/s  "
          f"({len(texts)} docs, {mb:.2f} MB, {seconds:.2f} s){extra}")


def bench_ours(texts: list[str], splitter: str) -> None:
    q = GopherQualityFilter(QualityConfig(word_splitter=splitter))
    r = GopherRepetitionFilter(RepetitionConfig(word_splitter=splitter))
    split_words(texts[0], q.cfg.word_splitter)  # load spaCy outside the timing
    t = time.perf_counter()
    kept = sum(q.check(x) is None and r.check(x) is None for x in texts)
    report(f"filters: scalinglab ({q.cfg.word_splitter})", texts, time.perf_counter() - t,
           f" kept {kept}")


def bench_datatrove(texts: list[str]) -> None:
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import GopherQualityFilter as DQ
        from datatrove.pipeline.filters import GopherRepetitionFilter as DR
    except ImportError:
        print("filters: datatrove                 (not installed: pip install datatrove spacy)")
        return
    dq, dr = DQ(), DR()
    dq.filter(Document(text=texts[0], id="warm-up"))
    t = time.perf_counter()
    kept = 0
    for i, x in enumerate(texts):
        doc = Document(text=x, id=str(i))
        kept += dq.filter(doc) is True and dr.filter(doc) is True
    report("filters: datatrove (spacy)", texts, time.perf_counter() - t, f" kept {kept}")


def train_bpe(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def bench_tokenize(texts: list[str], tokenizer: str | None, vocab: int) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer) if tokenizer else train_bpe(texts, vocab)
    t = time.perf_counter()
    n_tokens = 0
    for i in range(0, len(texts), 256):
        n_tokens += sum(len(e.ids) for e in tok.encode_batch(texts[i:i + 256]))
    seconds = time.perf_counter() - t
    report(f"tokenize: BPE vocab {tok.get_vocab_size()}", texts, seconds,
           f" {n_tokens / seconds:,.0f} tokens/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=800, help="documents to use (0 = all)")
    p.add_argument("--vocab", type=int, default=8192, help="BPE vocabulary to train")
    p.add_argument("--tokenizer", help="use this tokenizer.json instead of training one")
    args = p.parse_args()
    texts = load_texts(args.docs)
    bench_ours(texts, "regex")
    bench_ours(texts, "spacy")
    bench_datatrove(texts)
    all_texts = load_texts(0)
    bench_tokenize(all_texts, args.tokenizer, args.vocab)


if __name__ == "__main__":  # datatrove's executors need the main guard; keep the habit
    main()
