"""From a real training run: the trainer's run directory is evaluated with no extra flags (the
byte tokenizer and the shards' val_docs.jsonl are found through the run's config)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.data.shards import write_shard
from scalinglab.model.presets import tiny
from scalinglab.train.config import TrainConfig
from scalinglab.train.trainer import train
from tests.eval import data


@pytest.mark.slow
def test_trained_run_is_evaluated_in_place(tmp_path, capsys):
    shards = tmp_path / "shards"
    docs = data.val_docs(n=40, words=40)
    for split, part in (("train", docs[:30]), ("val", docs[30:])):
        tokens = np.array([b for d in part for b in [*d["text"].encode(), 256]], np.uint16)
        write_shard(shards, split, 0, tokens, vocab_size=257, eot_id=256)
    data.write_jsonl(shards / "val_docs.jsonl", docs[30:])
    cfg = TrainConfig(model=tiny().merge({"vocab_size": 257}), data=str(shards),
                      out=str(tmp_path / "run"), tokens=20_000, batch_tokens=1024, lr=3e-3)
    summary = train(cfg, progress=False)
    assert main(["eval", cfg.out, "--tasks", "heldout_bpb,heldout_cloze", "--json"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert json.loads(capsys.readouterr().out) == results
    # bits per byte and the trainer's validation loss (nats per byte here) tell the same story.
    val_bpb = summary["final_val_loss"] / np.log(2)
    assert results["bits_per_byte"] == pytest.approx(val_bpb, rel=0.05)
    assert results["tasks"]["heldout_cloze"]["shots"]["0"]["n"] > 0


def test_run_made_with_relative_paths_evaluates_from_another_directory(tmp_path, monkeypatch,
                                                                       capsys):
    """Corpus -> tokenize -> train with paths relative to one directory; eval from another."""
    from tests.eval.test_model_io import train_bpe

    work = tmp_path / "work"
    work.mkdir()
    docs = data.val_docs(n=30, words=30)
    data.write_jsonl(work / "raw.jsonl", [{"text": d["text"]} for d in docs])
    train_bpe(work / "bpe.json", [d["text"] for d in docs])
    monkeypatch.chdir(work)
    assert main(["data", "prepare", "--source", "raw.jsonl", "--out", "corpus", "--quiet",
                 "quality.enabled=false", "repetition.enabled=false", "ngram_index=false"]) == 0
    assert main(["data", "tokenize", "--corpus", "corpus", "--tokenizer", "bpe.json",
                 "--out", "shards", "--quiet", "val_fraction=0.2"]) == 0
    meta = json.loads((work / "shards" / "meta.json").read_text())
    assert meta["tokenizer"] == str(work / "bpe.json")  # absolute, not "bpe.json"
    assert main(["train", "--preset", "tiny", "--data", "shards", "--out", "run",
                 "--tokens", "2000", "--quiet", "batch_tokens=512"]) == 0
    assert main(["train", "--preset", "tiny", "--data", "./shards", "--out", "run",
                 "--tokens", "2000", "--quiet", "batch_tokens=512"]) == 0  # resumes, same run
    (work / "bpe.json").unlink()  # the run carries its own copy
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", "work/run", "--tasks", "heldout_bpb", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bits_per_byte"] > 0
    assert (work / "run" / "tokenizer.json").read_bytes() == \
        (work / "shards" / "tokenizer.json").read_bytes()
