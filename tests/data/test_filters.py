"""Gopher quality / repetition rules: each rule drops what it should, thresholds configurable."""

from __future__ import annotations

import pytest

from scalinglab.data.document import Document
from scalinglab.data.steps.filters import (
    GopherQualityFilter,
    GopherRepetitionFilter,
    QualityConfig,
    RepetitionConfig,
    duplicate_ngram_chars,
    split_words,
    top_ngram_chars,
)
from tests.data.conftest import make_text

GOOD = make_text(0)


@pytest.mark.parametrize("splitter", ["regex", "spacy"])
def test_clean_text_is_kept(splitter: str) -> None:
    if splitter == "spacy":
        pytest.importorskip("spacy")
    assert GopherQualityFilter(QualityConfig(word_splitter=splitter)).check(GOOD) is None
    assert GopherRepetitionFilter(RepetitionConfig(word_splitter=splitter)).check(GOOD) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("the cat and the dog", "too_few_words"),
    ("a b c d e f to of the and " * 10, "mean_word_length_low"),
    ("extraordinarily incomprehensibilities " * 30 + " the and", "mean_word_length_high"),
    (GOOD + " #tag" * 40, "hash_ratio"),
    (GOOD + " wait..." * 40, "ellipsis_ratio"),
    ("\n".join(f"- item {w} of the list and more" for w in range(60)), "bullet_lines"),
    ("\n".join(f"and then the {w} story went on..." for w in range(30)) + "\n" + GOOD,
     "ellipsis_lines"),
    (GOOD + " 1999 2000 2001 , ;" * 40, "alpha_words_low"),
    ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 10, "too_few_stop_words"),
])
def test_quality_rules(text: str, reason: str) -> None:
    assert GopherQualityFilter(QualityConfig(word_splitter="regex")).check(text) == reason


def test_quality_thresholds_are_configurable() -> None:
    strict = GopherQualityFilter(QualityConfig(word_splitter="regex", min_words=10_000))
    assert strict.check(GOOD) == "too_few_words"
    off = GopherQualityFilter(QualityConfig(word_splitter="regex", min_stop_words=None))
    assert off.check("lorem ipsum dolor sit amet consectetur adipiscing elit " * 10) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("\n\n".join(["The same paragraph of text repeated here."] * 12 + [GOOD]), "dup_para_frac"),
    (GOOD + "\n\n" + "\n".join(["a repeated line of text in the file"] * 20), "dup_line_frac"),
    (GOOD + "\n\n" + "the king " * 120, "top_2_gram"),
])
def test_repetition_rules(text: str, reason: str) -> None:
    assert GopherRepetitionFilter(RepetitionConfig(word_splitter="regex")).check(text) == reason


def test_ngram_helpers() -> None:
    words = ("a", "b", "a", "b", "a", "b")
    assert top_ngram_chars(words, 2) == 3 * len("a b")  # "a b" x3 beats "b a" x2
    # 2-grams ab, ba, then "ab" repeats at 2 (skip 2), "ab" again at 4: 2 repeats x 2 chars
    assert duplicate_ngram_chars(words, 2) == 4
    assert split_words("Don't stop, king's men... o'er 5.00", "regex") == (
        "Do", "n't", "stop", ",", "king", "'s", "men", "...", "o'er", "5.00")


def test_filter_step_counts_drops_per_reason_in_docs_and_bytes() -> None:
    docs = [Document(GOOD, "a"), Document("too short", "b"), Document("tiny", "c")]
    step = GopherQualityFilter(QualityConfig(word_splitter="regex"))
    kept = list(step.run(docs))
    assert [d.id for d in kept] == ["a"]
    c = step.stats.as_dict()
    assert c["in.docs"] == 3 and c["out.docs"] == 1
    assert c["dropped.gopher_quality.too_few_words.docs"] == 2
    assert c["dropped.gopher_quality.too_few_words.bytes"] == len("too short") + len("tiny")
