"""tokenize: shards the trainer reads, EOT between documents, deterministic held-out docs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.data.pipeline import PrepareConfig, prepare, read_jsonl_docs
from scalinglab.data.shards import open_split
from scalinglab.data.sources import SourceConfig
from scalinglab.data.steps.dedup import DedupConfig
from scalinglab.data.tokenize import TokenizeConfig, load_tokenizer, tokenize_corpus
from scalinglab.train.data import TokenWindows
from tests.data.conftest import make_text, write_jsonl


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    recs = [{"text": make_text(i), "id": str(i)} for i in range(60)]
    recs[3]["text"] += " A literal <|endoftext|> inside a text."
    src = write_jsonl(tmp_path / "raw.jsonl", recs)
    out = tmp_path / "corpus"
    prepare(PrepareConfig(sources=[SourceConfig(path=str(src))], out=str(out), progress=False,
                          dedup=DedupConfig(exact=False, near=False)))  # near-dup fixtures
    return out


def _tokenize(corpus: Path, tok: Path, out: Path, **kw) -> dict:
    return tokenize_corpus(TokenizeConfig(corpus=str(corpus), tokenizer=str(tok), out=str(out),
                                          val_fraction=0.1, progress=False, **kw))


def test_shards_hold_every_document_once_with_eot(corpus: Path, tokenizer_json: Path,
                                                  tmp_path: Path) -> None:
    meta = _tokenize(corpus, tokenizer_json, tmp_path / "shards")
    tok, eot, vocab = load_tokenizer(tokenizer_json)
    texts = {d.id: d.text for f in corpus.glob("documents-*.jsonl") for d in read_jsonl_docs(f)}
    decoded = []
    for split in ("train", "val"):
        shards = open_split(tmp_path / "shards", split)
        tokens = np.concatenate([np.asarray(s.tokens) for s in shards])
        assert shards[0].tokens.dtype == np.uint16 and shards[0].header["eot_id"] == eot
        assert tokens[-1] == eot and (tokens == eot).sum() == meta["splits"][split]["docs"]
        cuts = np.flatnonzero(tokens == eot)
        decoded += [tok.decode(d.tolist()) for d in np.split(tokens, cuts + 1)[:-1]]
    assert sorted(decoded) == sorted(t.replace("<|endoftext|>", "") for t in texts.values())
    removed = sum(s["eot_removed_from_text"] for s in meta["splits"].values())
    assert removed == 1
    assert meta["splits"]["val"]["docs"] == 6 and meta["tokens_per_s"] > 0
    val_docs = [json.loads(line) for line in open(tmp_path / "shards" / "val_docs.jsonl")]
    assert len(val_docs) == 6 and set(val_docs[0]) == {"text", "id", "source"}
    assert all(texts[v["id"]] == v["text"] for v in val_docs)
    TokenWindows(tmp_path / "shards", "train", seq_len=16)  # the trainer can read them


def test_split_is_deterministic_and_seeded(corpus: Path, tokenizer_json: Path,
                                           tmp_path: Path) -> None:
    def val_ids(out: str, seed: int) -> list[str]:
        _tokenize(corpus, tokenizer_json, tmp_path / out, seed=seed)
        return [json.loads(x)["id"] for x in open(tmp_path / out / "val_docs.jsonl")]

    assert val_ids("a", 0) == val_ids("b", 0)
    assert (tmp_path / "a" / "train-00000.bin").read_bytes() == \
        (tmp_path / "b" / "train-00000.bin").read_bytes()
    assert val_ids("a2", 1) != val_ids("a", 0)


def test_resume_skips_finished_files(corpus: Path, tokenizer_json: Path, tmp_path: Path) -> None:
    first = _tokenize(corpus, tokenizer_json, tmp_path / "s")
    (tmp_path / "s" / "meta.json").unlink()  # as if killed before the end
    second = _tokenize(corpus, tokenizer_json, tmp_path / "s")
    assert second["splits"] == first["splits"]


def test_large_vocab_uses_uint32(corpus: Path, tokenizer_json: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.add_tokens([f"zz{i}qq" for i in range(66_000)])
    big = tmp_path / "big.json"
    tok.save(str(big))
    _tokenize(corpus, big, tmp_path / "s32")
    assert open_split(tmp_path / "s32", "train")[0].tokens.dtype == np.uint32


def test_cli_tokenize_prints_rate_and_errors(corpus: Path, tokenizer_json: Path, tmp_path: Path,
                                             capsys) -> None:
    code = main(["data", "tokenize", "--corpus", str(corpus), "--tokenizer", str(tokenizer_json),
                 "--out", str(tmp_path / "cli"), "--quiet"])
    assert code == 0 and "tokens/s" in capsys.readouterr().out
    bad = tmp_path / "noeot.json"
    from tokenizers import Tokenizer, models

    Tokenizer(models.BPE()).save(str(bad))
    code = main(["data", "tokenize", "--corpus", str(corpus), "--tokenizer", str(bad),
                 "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2 and "<|endoftext|>" in capsys.readouterr().err


def test_train_index_excludes_held_out_documents(tokenizer_json: Path, tmp_path: Path) -> None:
    """SHARDS/ngram_index holds the training split only: held-out docs are clean against it,
    while training documents are dirty."""
    from scalinglab.data.ngram_index import NgramIndex

    rng = np.random.default_rng(0)
    vocab = ["the", "of", "and", "to", "that", "with", "have", "be"] + [
        f"word{i}" for i in range(400)]
    recs = [{"text": " ".join(rng.choice(vocab, size=120)), "id": str(i)} for i in range(30)]
    corpus = tmp_path / "corpus"
    src = write_jsonl(tmp_path / "r.jsonl", recs)
    prepare(PrepareConfig(sources=[SourceConfig(path=str(src))], out=str(corpus),
                          progress=False).merge(["quality.enabled=false",
                                                 "repetition.enabled=false"]))
    out = tmp_path / "shards"
    _tokenize(corpus, tokenizer_json, out)
    index = NgramIndex.load(out / "ngram_index")
    val = [json.loads(line) for line in (out / "val_docs.jsonl").read_text().splitlines()]
    val_ids = {d["id"] for d in val}
    train = [d for f in sorted(corpus.glob("documents-*.jsonl")) for d in read_jsonl_docs(f)
             if d.id not in val_ids]
    assert val and train
    assert not any(index.dirty(d["text"]) for d in val)
    assert all(index.dirty(d.text) for d in train)
