"""A model that has learned the held-out documents must score well on tasks built from them:
the harness measures something (true continuations chosen, last words predicted, fewer bits)."""

from __future__ import annotations

import random

import pytest
import torch

from scalinglab.eval.runner import evaluate
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tasks import resolve_task
from scalinglab.eval.tokenizer import ByteTokenizer
from tests.eval import data
from tests.eval.conftest import byte_model


def fit(model, texts: list[str], steps: int, seed: int = 0):
    """Plain next-byte training on random 64-byte windows of ``texts``."""
    stream = torch.tensor([b for t in texts for b in [*t.encode(), 256]])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    t = model.config.max_seq_len
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(stream) - t - 1, (16,), generator=gen)
        batch = torch.stack([stream[s: s + t + 1] for s in starts])
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def topical_docs(n: int = 12, words: int = 36) -> list[dict]:
    """Documents that each use their own four pseudo-words, so a span of another document is
    recognisably not the continuation (a tiny model learns this in a few hundred steps)."""
    rng = random.Random(0)
    letters = "bcdfghjklmnpqrstvwz"
    docs = []
    for i in range(n):
        vocab = ["".join(rng.choice(letters) + rng.choice("aeiou") for _ in range(2))
                 for _ in range(4)]
        text = " ".join(rng.choice(vocab) for _ in range(words))
        docs.append({"text": text, "id": f"d{i}", "source": "web" if i % 2 else "books"})
    return docs


@pytest.mark.slow
def test_learned_documents_score_well(tmp_path):
    docs = topical_docs()
    heldout = data.write_jsonl(tmp_path / "val_docs.jsonl", docs)
    tasks = [resolve_task(n, heldout=heldout, seed=0)
             for n in ("heldout_bpb", "heldout_continuation")]
    torch.manual_seed(0)
    model = byte_model(max_seq_len=64)
    before = evaluate(Scorer(model, ByteTokenizer()), tasks, [0])
    fit(model, [d["text"] for d in docs], steps=200)
    after = evaluate(Scorer(model, ByteTokenizer()), tasks, [0])
    assert after["bits_per_byte"] < 0.5 * before["bits_per_byte"]
    mc = after["tasks"]["heldout_continuation"]["shots"]["0"]
    assert mc["n"] >= 8 and mc["acc"] >= 0.6  # chance is 0.25
