"""Clean/dirty scoring with the corpus stage's real 13-gram index, through the CLI."""

from __future__ import annotations

import json

import pytest

from scalinglab.cli import main
from scalinglab.data.ngram_index import NgramIndex
from scalinglab.eval.tasks.heldout import read_docs, split_docs
from tests.eval import data


def test_examples_from_training_documents_are_dirty(byte_run, tmp_path, capsys):
    docs = data.val_docs(n=12, words=40)
    heldout = data.write_jsonl(tmp_path / "val_docs.jsonl", docs)
    leaked = {d["id"] for d in docs[:4]}  # these held-out documents were also trained on
    index_dir = tmp_path / "index"
    train = ["an unrelated training document " * 5] + [d["text"] for d in docs[:4]]
    NgramIndex.build(train).save(index_dir)
    out = tmp_path / "results.json"
    assert main(["eval", str(byte_run), "--tasks", "heldout_bpb,heldout_continuation",
                 "--heldout", str(heldout), "--index", str(index_dir), "--out", str(out)]) == 0
    results = json.loads(out.read_text())["tasks"]
    bpb = results["heldout_bpb"]["shots"]["0"]
    assert (bpb["dirty"]["n"], bpb["clean"]["n"]) == (4, 8)
    mc = results["heldout_continuation"]["shots"]["0"]
    assert mc["dirty"]["n"] + mc["clean"]["n"] == mc["n"]
    # Scored examples are the documents outside the few-shot part; the leaked ones are dirty.
    scored, _ = split_docs(read_docs(heldout), seed=0)
    assert mc["dirty"]["n"] == sum(d["id"] in leaked for d in scored) > 0
    mean = (mc["dirty"]["acc"] * mc["dirty"]["n"] + mc["clean"]["acc"] * mc["clean"]["n"]) / mc["n"]
    assert mc["acc"] == pytest.approx(mean)
    assert main(["eval", str(byte_run), "--tasks", "heldout_bpb", "--heldout", str(heldout),
                 "--index", str(tmp_path / "none")]) == 2
    assert "n-gram index not found" in capsys.readouterr().err
