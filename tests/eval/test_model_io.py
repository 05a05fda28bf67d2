"""Finding a run's tokenizer and loading the model from each kind of path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scalinglab.cli import main
from scalinglab.data.shards import write_shard
from scalinglab.eval.model_io import load_eval_model, run_dir_of
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tokenizer import (
    ByteTokenizer,
    HFTokenizer,
    TokenizerError,
    load_tokenizer,
    tokenizer_for_run,
)
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model
from scalinglab.train.checkpoint import export_model, save_checkpoint
from tests.eval.conftest import byte_model
from tests.eval.data import PIQA, write_jsonl


def train_bpe(path, texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return path


def test_run_tokenizer_found_through_shard_meta(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    train_bpe(shards / "bpe.json", [r["goal"] + " " + r["sol1"] for r in PIQA] * 20)
    (shards / "meta.json").write_text(json.dumps({"tokenizer": "bpe.json"}))
    write_shard(shards, "train", 0, np.array([5, 6, 0]), vocab_size=300, eot_id=0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(shards)}))
    tok = tokenizer_for_run(run, vocab_size=300)
    assert isinstance(tok, HFTokenizer) and tok.eot_id == 0
    text = "Open a jar: twist the lid."
    assert tok.decode(tok.encode(text)) == text
    # A BPE model scores through the same harness (continuations split at the context).
    scorer = Scorer(build_model(tiny().merge({"vocab_size": tok.vocab_size})), tok)
    prompt = "Question: Open a jar\nAnswer:"
    g = scorer.encode_group(prompt, [" Twist the lid."])
    assert tok.decode(g.context + g.continuations[0]) == prompt + " Twist the lid."
    (res,) = scorer.loglikelihood_groups([("Question: Open a jar\nAnswer:", [" Twist."])])
    assert res[0][0] < 0


def test_byte_fallback_and_clear_errors(tmp_path):
    assert isinstance(tokenizer_for_run(tmp_path, vocab_size=257), ByteTokenizer)
    with pytest.raises(TokenizerError, match="pass --tokenizer"):
        tokenizer_for_run(tmp_path, vocab_size=300)
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TokenizerError, match="bad.json: cannot load"):
        load_tokenizer(tmp_path / "bad.json")
    assert ByteTokenizer().decode(ByteTokenizer().encode("héllo") + [256]) == "héllo"


def test_training_checkpoint_loads_like_the_export(tmp_path):
    model = byte_model()
    run = tmp_path / "run"
    export_model(run, model, model.config)
    (run / "config.json").write_text(json.dumps({"model": model.config.as_dict(), "data": ""}))
    ckpt = save_checkpoint(run, 10, {"model": model.state_dict(), "step": 10}, keep=1)
    assert run_dir_of(ckpt) == run and run_dir_of(run / "model.safetensors") == run
    tokens = torch.tensor([[1, 2, 3, 4]])
    for path in (run, run / "model.safetensors", ckpt):
        torch.testing.assert_close(load_eval_model(path)(tokens), model(tokens))
    piqa = write_jsonl(tmp_path / "piqa.jsonl", PIQA)
    out = tmp_path / "r.json"
    assert main(["eval", str(ckpt), "--tasks", f"piqa={piqa}", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["tasks"]["piqa"]["shots"]["0"]["n"] == 3


def test_merges_across_the_boundary_do_not_eat_context(tmp_path):
    from tokenizers import Tokenizer, models, trainers

    # No pre-tokenizer: merges cross spaces, as in a multi-word tokenizer.
    tok = Tokenizer(models.BPE())
    tok.train_from_iterator(["the cat sat on the mat"] * 50, trainers.BpeTrainer(
        vocab_size=60, special_tokens=["<|endoftext|>"]))
    tok.save(str(tmp_path / "mw.json"))
    hf = load_tokenizer(tmp_path / "mw.json")
    ctx, whole = hf.encode("the cat sat on the"), hf.encode("the cat sat on the mat")
    assert whole[: len(ctx)] != ctx  # a token straddles the boundary
    scorer = Scorer(build_model(tiny().merge({"vocab_size": hf.vocab_size})), hf)
    g = scorer.encode_group("the cat sat on the", [" mat"])
    assert g.context == ctx and g.continuations[0] == hf.encode(" mat")
