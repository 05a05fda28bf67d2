"""Prompt/answer rows: targets only at the answer's positions, exact resume positions."""

from __future__ import annotations

import pytest
import torch

from scalinglab.adapt.data import IGNORE, PromptAnswerRows
from scalinglab.errors import ScalinglabError


def test_targets_cover_only_the_answer():
    rows = PromptAnswerRows([([5, 6, 7], [8, 9])], seq_len=8, pad_id=0, vocab_size=10)
    x, y = rows.batch(0, 1)
    # inputs: the 5 tokens but the last, then padding; targets: 8 predicted after 7, 9 after 8
    assert x.tolist() == [[5, 6, 7, 8, 0, 0, 0, 0]]
    assert y.tolist() == [[IGNORE, IGNORE, 8, 9, IGNORE, IGNORE, IGNORE, IGNORE]]


def test_long_prompt_keeps_its_end_and_the_answer():
    rows = PromptAnswerRows([(list(range(1, 11)), [11])], seq_len=4, pad_id=0, vocab_size=12)
    x, y = rows.batch(0, 1)
    assert x.tolist() == [[7, 8, 9, 10]] and y.tolist() == [[IGNORE, IGNORE, IGNORE, 11]]
    assert rows.truncated == 1


def test_epochs_visit_every_example_once_and_batches_are_positional():
    pairs = [([1], [i + 2]) for i in range(5)]
    rows = PromptAnswerRows(pairs, seq_len=2, pad_id=0, vocab_size=10, seed=3)
    _, y = rows.batch(0, 5)
    assert sorted(y[:, 0].tolist()) == [2, 3, 4, 5, 6]
    # sample i is the same whether read in one batch or on its own (exact resume)
    assert torch.equal(rows.batch(7, 1)[1], rows.batch(5, 5)[1][2:3])


def test_answer_longer_than_the_context_is_an_error():
    with pytest.raises(ScalinglabError, match="does not fit"):
        PromptAnswerRows([([1], [2, 3, 4])], seq_len=2, pad_id=0, vocab_size=10)
