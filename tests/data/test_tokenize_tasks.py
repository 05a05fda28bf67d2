"""``data tokenize executor=local tasks=T``: the same shards as the one-process run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalinglab.data.executors import TaskFailed
from scalinglab.data.pipeline import PrepareConfig, prepare
from scalinglab.data.sources import SourceConfig
from scalinglab.data.steps.dedup import DedupConfig
from scalinglab.data.tokenize import TokenizeConfig, tokenize_corpus
from tests.data.conftest import make_text, write_jsonl

pytest.importorskip("datatrove")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A corpus of several ``documents-NNNNN.jsonl`` files (small shard_bytes)."""
    recs = [{"text": make_text(i), "id": str(i)} for i in range(60)]
    src = write_jsonl(tmp_path / "raw.jsonl", recs)
    out = tmp_path / "corpus"
    prepare(PrepareConfig(sources=[SourceConfig(path=str(src))], out=str(out), progress=False,
                          shard_bytes=4000, ngram_index=False,
                          dedup=DedupConfig(exact=False, near=False)))
    assert len(list(out.glob("documents-*.jsonl"))) >= 5
    return out


def _tokenize(corpus: Path, tok: Path, out: Path, **kw) -> dict:
    return tokenize_corpus(TokenizeConfig(corpus=str(corpus), tokenizer=str(tok), out=str(out),
                                          val_fraction=0.1, progress=False).merge(kw))


def _files(d: Path) -> dict[str, bytes]:
    """Every shard, header and the held-out documents (what the trainer and eval read)."""
    names = [*d.glob("train-*"), *d.glob("val-*"), d / "val_docs.jsonl"]
    return {p.name: p.read_bytes() for p in names}


def test_tasks_give_the_sequential_shards(corpus: Path, tokenizer_json: Path,
                                          tmp_path: Path) -> None:
    ref = _tokenize(corpus, tokenizer_json, tmp_path / "seq")
    got = _tokenize(corpus, tokenizer_json, tmp_path / "par", executor="local", tasks=3,
                    workers=1)
    a, b = _files(tmp_path / "seq"), _files(tmp_path / "par")
    n_files = len(list(corpus.glob("documents-*.jsonl")))
    assert len([n for n in a if n.endswith(".bin")]) == 2 * n_files  # one pair per file
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)  # byte for byte
    assert got["splits"] == ref["splits"] and got["val_fraction"] == ref["val_fraction"]
    assert len(list((tmp_path / "par" / "tasks" / "completions").iterdir())) == 3


def test_failed_task_leaves_no_meta_and_the_rerun_resumes(corpus: Path, tokenizer_json: Path,
                                                          tmp_path: Path, monkeypatch) -> None:
    import scalinglab.data.tokenize_tasks as tt

    original = tt.tokenize_file

    def broken(out, index, *a):
        if index == 4:
            raise RuntimeError("tokenizer exploded")
        return original(out, index, *a)

    monkeypatch.setattr(tt, "tokenize_file", broken)
    out = tmp_path / "par"
    with pytest.raises(TaskFailed, match=r"tokenize: stage tokenize: [12]/3 task\(s\) "
                       r"unfinished \(.*exploded\); log: .*tasks/logs/task_00001.log"):
        _tokenize(corpus, tokenizer_json, out, executor="local", tasks=3, workers=1)
    assert not (out / "meta.json").exists()  # the trainer's shards are not declared finished
    done = {p.name: p.stat().st_mtime_ns for p in out.glob(".done-*.json")}
    assert ".done-00001.json" in done and ".done-00004.json" not in done
    monkeypatch.setattr(tt, "tokenize_file", original)
    got = _tokenize(corpus, tokenizer_json, out, executor="local", tasks=3, workers=1)
    assert {n: (out / n).stat().st_mtime_ns for n in done} == done  # finished files kept
    ref = _tokenize(corpus, tokenizer_json, tmp_path / "seq")
    assert _files(out) == _files(tmp_path / "seq") and got["splits"] == ref["splits"]
    assert json.loads((out / "meta.json").read_text())["splits"] == ref["splits"]
