"""heldout_source: test passages from held-out documents, train/valid from disjoint training
documents, every split balanced by source."""

from __future__ import annotations

import json

from scalinglab.eval.tasks import resolve_task
from tests.adapt.conftest import write_jsonl


def make_shards(tmp_path, n_docs: int = 12):
    corpus, shards = tmp_path / "corpus", tmp_path / "shards"
    corpus.mkdir()
    shards.mkdir()
    docs = []
    for src in ("kjv", "milton", "shakespeare"):
        for i in range(n_docs):
            words = " ".join(f"{src}{i}w{k}" for k in range(40))
            docs.append({"text": words, "id": f"{src}/{i}", "source": src})
    docs.append({**docs[0], "id": "kjv/0#copy", "metadata": {"copy": 1}})  # a mixture copy
    write_jsonl(corpus / "documents-00000.jsonl", docs)
    (corpus / "stats.json").write_text("{}")
    held = [d for d in docs if d["id"].endswith(("/0", "/1"))]
    write_jsonl(shards / "val_docs.jsonl", held)
    (shards / "meta.json").write_text(json.dumps({"corpus": str(corpus)}))
    return shards / "val_docs.jsonl"


def doc_of(passage: str) -> str:
    return passage.split()[0].split("w")[0]  # "kjv3w5" -> "kjv3"


def test_splits_are_disjoint_by_document_and_balanced(tmp_path):
    task = resolve_task("heldout_source", make_shards(tmp_path))
    test, train, valid = task.examples, task.train, task.valid
    held = {f"{s}{i}" for s in ("kjv", "milton", "shakespeare") for i in (0, 1)}
    assert {doc_of(e.fields["passage"]) for e in test} <= held
    train_docs = {doc_of(e.fields["passage"]) for e in train}
    valid_docs = {doc_of(e.fields["passage"]) for e in valid}
    assert not (train_docs & held) and not (valid_docs & held) and not train_docs & valid_docs
    for split in (test, train, valid):
        counts = {}
        for e in split:
            counts[e.source] = counts.get(e.source, 0) + 1
            assert e.choices == [" Bible", " Milton", " Shakespeare"]
            assert e.choices[e.gold].strip() == {"kjv": "Bible", "milton": "Milton",
                                                 "shakespeare": "Shakespeare"}[e.source]
        assert len(set(counts.values())) == 1 and len(counts) == 3
    # 2 held-out docs x 2 passages of 16 words per source
    assert len(test) == 3 * 4 and task.fewshot_pool is task.train
