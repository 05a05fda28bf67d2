"""Fixtures for the corpus tests: small real-looking documents and a tiny BPE tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Varied English sentences; documents are random draws so that the repetition rules pass.
from scalinglab.testing.faults import SENTENCES


def make_text(seed: int, n_sentences: int = 12) -> str:
    """A document of distinct sentences (a seeded sample and order, so documents differ)."""
    import random

    rng = random.Random(seed)
    picks = rng.sample(SENTENCES, k=min(n_sentences, len(SENTENCES)))
    return "\n\n".join(picks)


def write_jsonl(path: Path, records: list, raw_lines: list[bytes] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for r in records:
            f.write(json.dumps(r).encode() + b"\n")
        for line in raw_lines:
            f.write(line + b"\n")
    return path


@pytest.fixture
def good_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "src" / "good.jsonl",
                       [{"text": make_text(i), "id": f"d{i}"} for i in range(40)])


@pytest.fixture(scope="session")
def tokenizer_json(tmp_path_factory) -> Path:
    """A small byte-level BPE trained directly with `tokenizers`, with <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([make_text(i) for i in range(50)], trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path
