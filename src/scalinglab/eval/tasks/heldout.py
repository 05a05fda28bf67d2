"""Built-in tasks made from the corpus stage's held-out documents (``SHARDS/val_docs.jsonl``,
one ``{"text", "id", "source"}`` object per line), deterministic by seed.

- ``heldout_bpb``: every document, scored as a whole: bits per byte per source (as Gopher
  reports per Pile subset) and overall.
- ``heldout_cloze``: one passage per document ending at a word (LAMBADA-style): predict the
  last word; greedy exact match and perplexity.
- ``heldout_continuation``: a passage and four continuations, the true one and three spans of
  the same length from other documents (HellaSwag-like).

Documents are split by the seed: ``FEWSHOT_FRACTION`` of them only ever serve as few-shot
examples, the rest are scored. Whitespace runs inside passages are joined by single spaces.
"""

from __future__ import annotations

import random
import re

from scalinglab.eval.tasks.base import Example, TaskError, read_jsonl

FEWSHOT_FRACTION = 0.2
CLOZE_WORDS = 40
"""Context words before the cloze target."""
CONTEXT_WORDS, CONTINUATION_WORDS, N_CHOICES = 24, 8, 4
_WORD = re.compile(r"[A-Za-z]{2,}")


def read_docs(path) -> list[dict]:
    docs = []
    for lineno, r in read_jsonl(path):
        if not isinstance(r.get("text"), str):
            raise TaskError(f"{path}:{lineno}: missing string field 'text'")
        docs.append({"text": r["text"], "id": str(r.get("id", lineno)),
                     "source": str(r.get("source", ""))})
    if not docs:
        raise TaskError(f"{path}: no documents")
    return docs


def split_docs(docs: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """(scored, few-shot) documents; at least one of each when there are two or more."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_shot = max(1, round(len(docs) * FEWSHOT_FRACTION)) if len(docs) > 1 else 0
    return [docs[i] for i in order[n_shot:]], [docs[i] for i in order[:n_shot]]


def bpb_examples(docs: list[dict]) -> list[Example]:
    return [Example({}, [], 0, text=d["text"], source=d["source"]) for d in docs]


def cloze_examples(docs: list[dict], seed: int) -> list[Example]:
    out = []
    for d in docs:
        words = d["text"].split()
        ends = [i for i in range(4, len(words)) if _WORD.fullmatch(words[i])]
        if not ends:
            continue  # too short or no plain word to predict
        rng = random.Random(f"{seed}:cloze:{d['id']}")
        e = rng.choice(ends)
        context = " ".join(words[max(0, e - CLOZE_WORDS): e])
        out.append(Example({"context": context}, [" " + words[e]], 0,
                           text=context + " " + words[e], source=d["source"]))
    return out


def continuation_examples(docs: list[dict], seed: int) -> list[tuple[str, Example]]:
    """(document id, example): the true continuation vs spans of other documents; needs
    N_CHOICES documents of CONTEXT_WORDS + CONTINUATION_WORDS words or more."""
    spans = [d["text"].split() for d in docs]
    need = CONTEXT_WORDS + CONTINUATION_WORDS
    usable = [i for i, w in enumerate(spans) if len(w) >= need]
    if len(usable) < N_CHOICES:
        return []
    out = []
    for i in usable:
        rng = random.Random(f"{seed}:cont:{docs[i]['id']}")
        others = [j for j in usable if j != i]
        s = rng.randrange(len(spans[i]) - need + 1)
        context = " ".join(spans[i][s: s + CONTEXT_WORDS])
        true = " ".join(spans[i][s + CONTEXT_WORDS: s + need])
        choices = _distractors(true, [spans[j] for j in rng.sample(others, len(others))], rng)
        if len(choices) < N_CHOICES:
            continue  # other documents repeat this passage: no unambiguous question
        rng.shuffle(choices)
        out.append((docs[i]["id"], Example({"query": context}, choices, choices.index(true),
                                           text=context + " " + true, source=docs[i]["source"])))
    return out


def _distractors(true: str, candidates: list[list[str]], rng: random.Random) -> list[str]:
    """``true`` and up to N_CHOICES - 1 distinct random spans, one per candidate document."""
    choices = [true]
    for words in candidates:
        s = rng.randrange(len(words) - CONTINUATION_WORDS + 1)
        span = " ".join(words[s: s + CONTINUATION_WORDS])
        if span not in choices:
            choices.append(span)
        if len(choices) == N_CHOICES:
            break
    return choices


def heldout_task(fmt: str, path, seed: int) -> tuple[list[Example], list[Example]]:
    """(examples, few-shot pool) of built-in task ``fmt`` from ``val_docs.jsonl`` at ``path``."""
    docs = read_docs(path)
    if fmt == "heldout_bpb":
        return bpb_examples(docs), []
    scored, shots = split_docs(docs, seed)
    if fmt == "heldout_cloze":
        return cloze_examples(scored, seed), cloze_examples(shots, seed)
    if fmt == "heldout_continuation":
        # Distractors may come from any held-out document; shots from the few-shot part only.
        examples = continuation_examples(docs, seed)
        shot_ids = {d["id"] for d in shots}
        return ([e for i, e in examples if i not in shot_ids],
                [e for i, e in examples if i in shot_ids])
    raise TaskError(f"unknown built-in task format {fmt!r}")

