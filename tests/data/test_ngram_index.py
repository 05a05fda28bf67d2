"""NgramIndex: build / save / load / dirty with the GPT-3 short-text and frequency rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.data.ngram_index import NgramIndex, normalize_words
from scalinglab.errors import ScalinglabError

TRAIN = [
    "The quick brown fox jumps over the lazy dog while seven silver swans sing softly "
    "beside the old mill in the pale morning light of early spring.",
    "Entirely different words appear in this second training document about rivers, "
    "mountains and the long roads travellers take between distant cities.",
]


def test_normalize_words_lowercases_and_strips_punctuation():
    assert normalize_words("Don't STOP -- the (quick) fox_!") == ["dont", "stop", "the", "quick",
                                                                  "fox"]


def test_dirty_for_13gram_and_clean_otherwise():
    index = NgramIndex.build(TRAIN)
    dirty = "Question: the QUICK brown fox jumps over the lazy dog, while seven silver swans sing!"
    assert index.dirty(dirty)
    clean = "the quick brown fox jumps over the lazy cat while seven silver swans sing"
    assert not index.dirty(clean)  # every 13-gram window contains 'cat'


def test_short_text_rule():
    index = NgramIndex.build(TRAIN)
    assert index.dirty("seven silver swans sing softly beside the old mill")  # 9 words
    assert not index.dirty("seven silver swans sing softly")  # 5 < 8 words: never judged
    assert not index.dirty("seven silver swans sing softly beside the new mill")


def test_frequent_grams_are_ignored():
    phrase = "one two three four five six seven eight nine ten eleven twelve thirteen"
    docs = [f"doc {i} says {phrase} and more" for i in range(12)]
    assert not NgramIndex.build(docs, max_doc_freq=10).dirty(phrase)
    assert NgramIndex.build(docs[:10], max_doc_freq=10).dirty(phrase)
    assert NgramIndex.build(docs, max_doc_freq=None).dirty(phrase)


def test_save_load_round_trip(tmp_path):
    index = NgramIndex.build(TRAIN)
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # overwriting works
    header = json.loads((tmp_path / "idx" / "header.json").read_text())
    assert header["n"] == 13 and header["num_docs"] == 2
    loaded = NgramIndex.load(tmp_path / "idx")
    np.testing.assert_array_equal(loaded.table(13)[0], index.table(13)[0])
    probe = "seven silver swans sing softly beside the old mill"
    assert loaded.dirty(probe) and loaded.dirty(TRAIN[1])
    assert not loaded.dirty("nothing from the corpus is in this sentence of many plain words")
    with pytest.raises(ScalinglabError, match="n-gram index"):
        NgramIndex.load(tmp_path / "missing")


def test_fast_normalisation_matches_spans():
    from scalinglab.data.text_hash import word_spans

    text = "Don't -- stop_me; 'TIS\tthe Ünïcode—dash  café's end… 3.14 !!! a_b\n"
    words, spans = word_spans(text)
    assert normalize_words(text) == words
    assert [text[a:b] for a, b in spans][:3] == ["Don't", "stop_me;", "'TIS"]
