"""Checkpoints load without pickled code; exported weights reproduce the model; resuming."""

from __future__ import annotations

import pytest
import torch

from scalinglab.model.presets import tiny
from scalinglab.train import checkpoint as ckpt
from scalinglab.train.callbacks import Callback
from scalinglab.train.metrics import read_metrics
from scalinglab.train.trainer import Trainer, default_callbacks, train
from tests.train.test_trainer import SEQ, make_cfg


def test_checkpoint_loads_with_weights_only(shards, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(shards, run, checkpoint_every=4, keep_checkpoints=3), progress=False)
    assert ckpt.checkpoint_steps(run) == [12, 16, 20]
    state = torch.load(ckpt.latest_checkpoint(run), map_location="cpu", weights_only=True)
    assert state["step"] == 20 and state["samples_seen"] == 20 * 16
    assert {"model", "optimizer", "rng", "elapsed"} <= set(state)
    assert isinstance(state["model"]["tok_embeddings.weight"], torch.Tensor)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "step-00000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="step-00000001.pt"):
        ckpt.load_checkpoint(bad)


@pytest.mark.parametrize("overrides", [{}, {"tie_embeddings": False, "position": "relative",
                                             "norm": "rmsnorm", "mlp": "swiglu"}])
def test_exported_model_gives_identical_logits(shards, tmp_path, overrides):
    model_cfg = tiny().merge({"vocab_size": 64, "max_seq_len": SEQ, **overrides})
    trainer = Trainer(make_cfg(shards, tmp_path / "run", model=model_cfg, tokens=5 * 512),
                      progress=False)
    trainer.fit()
    loaded = ckpt.load_model(tmp_path / "run")
    assert loaded.config == model_cfg
    assert (loaded.output.weight is loaded.tok_embeddings.weight) == model_cfg.tie_embeddings
    tokens = torch.randint(0, 64, (2, SEQ))
    with torch.no_grad():
        assert torch.equal(loaded(tokens), trainer.model(tokens))
        direct = ckpt.load_model(tmp_path / "run" / "model.safetensors")
        assert torch.equal(direct(tokens), trainer.model(tokens))


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="model.safetensors"):
        ckpt.load_model(tmp_path)


class _Crash(Callback):
    """Stops the run with an exception after ``at`` steps (a crash, as far as the run knows)."""

    def __init__(self, at: int):
        self.at = at

    def post_step(self, trainer, metrics):
        if trainer.step == self.at:
            raise RuntimeError("simulated crash")


def test_resume_in_process_is_bit_identical(shards, tmp_path):
    """The quick version of tests/train/test_resume.py (which kills a real process)."""
    reference = make_cfg(shards, tmp_path / "ref", checkpoint_every=3, eval_every=4)
    train(reference, progress=False)
    crashed = make_cfg(shards, tmp_path / "crash", checkpoint_every=3, eval_every=4)
    with pytest.raises(RuntimeError, match="simulated"):
        Trainer(crashed, callbacks=[*default_callbacks(crashed, False), _Crash(11)]).fit()
    assert ckpt.checkpoint_steps(tmp_path / "crash")[-1] == 9
    assert len(read_metrics(tmp_path / "crash")) == 11  # rows 10, 11 get dropped on resume
    train(crashed, progress=False)
    assert curve(tmp_path / "crash") == curve(tmp_path / "ref")


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_resume_skips_a_torn_newest_checkpoint(shards, tmp_path, damage, capsys):
    """The newest checkpoint's file is cut short (a kill or a full disk mid-copy): resume
    falls back to the one before it and the loss curve is still bit-identical."""
    reference = make_cfg(shards, tmp_path / "ref", checkpoint_every=3, eval_every=4)
    train(reference, progress=False)
    crashed = make_cfg(shards, tmp_path / "crash", checkpoint_every=3, eval_every=4,
                       keep_checkpoints=3)
    with pytest.raises(RuntimeError, match="simulated"):
        Trainer(crashed, callbacks=[*default_callbacks(crashed, False), _Crash(11)]).fit()
    assert ckpt.checkpoint_steps(tmp_path / "crash") == [3, 6, 9]
    newest = ckpt.latest_checkpoint(tmp_path / "crash")
    with open(newest, "r+b") as f:
        f.truncate(0 if damage == "empty" else newest.stat().st_size // 2)
    trainer = Trainer(crashed, progress=False)
    trainer.fit()
    assert "skipping unreadable checkpoint" in capsys.readouterr().err
    assert trainer.step == 20
    assert curve(tmp_path / "crash") == curve(tmp_path / "ref")


def test_resume_with_only_torn_checkpoints_is_a_clear_error(shards, tmp_path):
    cfg = make_cfg(shards, tmp_path / "run", checkpoint_every=3)
    with pytest.raises(RuntimeError, match="simulated"):
        Trainer(cfg, callbacks=[*default_callbacks(cfg, False), _Crash(4)]).fit()
    ckpt.latest_checkpoint(tmp_path / "run").write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match="step-00000003.pt"):
        train(cfg, progress=False)


def curve(run) -> list[dict]:
    """metrics.jsonl without the timing columns (which differ from run to run)."""
    timing = ("tokens_per_s", "mfu", "elapsed")
    return [{k: v for k, v in row.items() if k not in timing} for row in read_metrics(run)]
