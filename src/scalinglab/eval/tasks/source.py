"""``heldout_source``: which source is this passage from? A task with a real training split,
built offline from the corpus a run was trained on.

Test passages come from the held-out documents (``SHARDS/val_docs.jsonl``); training and
validation passages from the *training* documents (the prepared corpus named by
``SHARDS/meta.json`` ``corpus``, minus the held-out ids and the mixture's copies), split by
document so that no document gives both training and validation passages. The few-shot pool
is the training split (as GPT-3 draws its shots from a task's training set).

Every split is balanced by source (the same number of passages per source, the smallest
source's count, at most ``PER_SOURCE[split]``), so chance is exactly 1 / number of sources.
A passage is ``PASSAGE_WORDS`` consecutive words; a document gives at most
``PASSAGES_PER_DOC`` of them, at non-overlapping seeded positions.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from scalinglab.eval.tasks.base import Example, TaskError
from scalinglab.eval.tasks.heldout import read_docs

PASSAGE_WORDS = 16
"""Short enough that a 1-shot prompt fits a 128-token context with the demo's 512-token BPE."""
PASSAGES_PER_DOC = 20
PER_SOURCE = {"test": 100, "train": 200, "valid": 50}
"""Passages per source in each split (fewer when a source has fewer)."""
VALID_DOC_FRACTION = 0.2
"""Share of the training documents whose passages form the validation split."""
LABELS = {"shakespeare": "Shakespeare", "kjv": "Bible", "milton": "Milton"}
"""Answer text per source name of the default corpus; other sources answer with their name."""


def label(source: str) -> str:
    return LABELS.get(source, source.capitalize() or "unknown")


def passages(docs: list[dict], seed: int, tag: str) -> dict[str, list[str]]:
    """Up to PASSAGES_PER_DOC non-overlapping passages per document, grouped by source."""
    out: dict[str, list[str]] = defaultdict(list)
    for d in docs:
        words = d["text"].split()
        n = len(words) // PASSAGE_WORDS
        if n == 0:
            continue
        rng = random.Random(f"{seed}:{tag}:{d['id']}")
        for k in sorted(rng.sample(range(n), min(n, PASSAGES_PER_DOC))):
            out[d["source"]].append(" ".join(words[k * PASSAGE_WORDS:(k + 1) * PASSAGE_WORDS]))
    return out


def balanced_examples(by_source: dict[str, list[str]], sources: list[str], cap: int,
                      seed: int, tag: str) -> list[Example]:
    """The same number of passages from every source (shuffled by the seed)."""
    n = min([cap, *(len(by_source.get(s, [])) for s in sources)])
    choices = [" " + label(s) for s in sources]  # the target delimiter is part of the answer
    rng = random.Random(f"{seed}:{tag}:balance")
    out = []
    for gold, s in enumerate(sources):
        for text in rng.sample(by_source.get(s, []), n):
            out.append(Example({"passage": text}, choices, gold, text=text, source=s))
    rng.shuffle(out)
    return out


def training_docs(val_docs_path: Path) -> list[dict]:
    """The documents the run trained on: the shards' corpus minus the held-out documents."""
    from scalinglab.data.document import read_jsonl_docs
    from scalinglab.data.tokenize import corpus_files

    shards = val_docs_path.parent
    meta_path = shards / "meta.json"
    try:
        corpus = json.loads(meta_path.read_text()).get("corpus") or ""
    except (OSError, json.JSONDecodeError) as e:
        raise TaskError(f"task heldout_source: {meta_path}: cannot read the shards' corpus "
                        f"({e}); it names the training documents") from None
    held_out = {d["id"] for d in read_docs(val_docs_path)}
    path = Path(corpus)
    if not path.is_absolute() and not path.exists():
        path = shards / corpus
    docs = []
    for f in corpus_files(path):
        for d in read_jsonl_docs(f):
            if d.id not in held_out and not d.metadata.get("copy"):
                docs.append({"text": d.text, "id": d.id, "source": d.source})
    return docs


def source_task(val_docs_path: str | Path, seed: int
                ) -> tuple[list[Example], list[Example], list[Example]]:
    """(test, train, valid) examples of ``heldout_source``."""
    val_docs_path = Path(val_docs_path)
    test_docs = read_docs(val_docs_path)
    train_docs = training_docs(val_docs_path)
    sources = sorted({d["source"] for d in test_docs} & {d["source"] for d in train_docs})
    if len(sources) < 2:
        raise TaskError(f"task heldout_source: {val_docs_path}: needs held-out and training "
                        f"documents from two or more sources, found {sources}")
    order = sorted(train_docs, key=lambda d: d["id"])
    random.Random(f"{seed}:source:split").shuffle(order)
    n_valid = max(1, round(len(order) * VALID_DOC_FRACTION))
    valid_docs, fit_docs = order[:n_valid], order[n_valid:]
    splits = {"test": test_docs, "train": fit_docs, "valid": valid_docs}
    return tuple(  # type: ignore[return-value]
        balanced_examples(passages(docs, seed, tag), sources, PER_SOURCE[tag], seed, tag)
        for tag, docs in splits.items())
