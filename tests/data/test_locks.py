"""One writer per corpus (prepare) and per shard directory (tokenize): a second one gets a
one-line error naming the holder, and deletes none of its temporary files."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.data.pipeline import PrepareConfig, prepare
from scalinglab.data.sources import SourceConfig
from scalinglab.data.steps.dedup import DedupConfig
from scalinglab.data.tokenize import TokenizeConfig, tokenize_corpus
from scalinglab.io import LockedError
from tests.data.conftest import make_text, write_jsonl


def _prepare_cfg(tmp_path: Path, out: Path) -> PrepareConfig:
    src = write_jsonl(tmp_path / "raw.jsonl", [{"text": make_text(i), "id": str(i)}
                                               for i in range(20)])
    return PrepareConfig(sources=[SourceConfig(path=str(src))], out=str(out), progress=False,
                         dedup=DedupConfig(exact=False, near=False))


def test_prepare_into_a_locked_corpus_is_refused(tmp_path, lock_holder, capsys):
    out = tmp_path / "corpus"
    (out / "parts").mkdir(parents=True)
    theirs = out / "parts" / ".raw-00000.jsonl.tmp-12345"  # the holder's part being written
    theirs.write_text("{}\n")
    pid = lock_holder(out)
    cfg = _prepare_cfg(tmp_path, out)
    with pytest.raises(LockedError, match=f"process {pid}"):
        prepare(cfg)
    assert theirs.exists() and not (out / "config.json").exists()
    assert main(["data", "prepare", "--source", str(tmp_path / "raw.jsonl"), "--out", str(out),
                 "progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"process {pid}" in err


def test_tokenize_into_locked_shards_is_refused(tmp_path, tokenizer_json, lock_holder):
    corpus = tmp_path / "corpus"
    prepare(_prepare_cfg(tmp_path, corpus))
    shards = tmp_path / "shards"
    shards.mkdir()
    theirs = shards / ".train-00000.bin.tmp-12345"
    theirs.write_bytes(b"\0\0")
    pid = lock_holder(shards)
    with pytest.raises(LockedError, match=f"process {pid}"):
        tokenize_corpus(TokenizeConfig(corpus=str(corpus), tokenizer=str(tokenizer_json),
                                       out=str(shards), progress=False))
    assert theirs.exists() and not list(shards.glob("*.json"))
