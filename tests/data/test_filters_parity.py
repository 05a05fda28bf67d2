"""Our Gopher filters make the same keep/drop decisions as datatrove's on the default corpus."""

from __future__ import annotations

import json

import pytest

from scalinglab.data.default_corpus import fetch_default_corpus
from scalinglab.data.steps.filters import (
    GopherQualityFilter,
    GopherRepetitionFilter,
    QualityConfig,
    RepetitionConfig,
)


@pytest.mark.slow
def test_decisions_equal_datatrove_on_default_corpus_sample() -> None:
    pytest.importorskip("spacy")
    dt_filters = pytest.importorskip("datatrove.pipeline.filters")
    from datatrove.data import Document as DTDocument

    corpus = fetch_default_corpus(quiet=True)
    texts = [json.loads(line)["text"] for f in corpus.files() for line in open(f)]
    sample = texts[::15]  # ~160 documents from every source
    dq, dr = dt_filters.GopherQualityFilter(), dt_filters.GopherRepetitionFilter()
    mq = GopherQualityFilter(QualityConfig(word_splitter="spacy"))
    mr = GopherRepetitionFilter(RepetitionConfig(word_splitter="spacy"))
    theirs, ours = [], []
    for i, text in enumerate(sample):
        doc = DTDocument(text=text, id=str(i))
        theirs.append(dq.filter(doc) is True and dr.filter(doc) is True)
        ours.append(mq.check(text) is None and mr.check(text) is None)
    assert 0 < sum(theirs) < len(theirs)  # the sample holds both kept and dropped documents
    assert ours == theirs
