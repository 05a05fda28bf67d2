"""Diverged runs: a non-finite step is never applied; nan_policy stop / skip / rollback; a run
that ends diverged says so (strict JSON, never ``complete``); loss-spike events."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from scalinglab.config import ConfigError
from scalinglab.train.callbacks import Callback
from scalinglab.train.config import TrainConfig
from scalinglab.train.metrics import read_metrics
from scalinglab.train.trainer import Trainer
from tests.train.test_trainer import BATCH, make_cfg


def strict_load(path: Path):
    """Parse like any non-Python reader would: NaN / Infinity are errors."""
    def refuse(token):
        raise AssertionError(f"{path}: non-strict JSON token {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def strict_rows(run: Path) -> list[dict]:
    text = (run / "metrics.jsonl").read_text()
    return [json.loads(line, parse_constant=lambda t: pytest.fail(f"{t} in metrics.jsonl"))
            for line in text.splitlines()]


def poison_batch(trainer: Trainer, index: int) -> list[int]:
    """NaN embeddings whenever the model trains on data batch ``index``: a bad batch, tied to
    the data and not to the step. Returns the steps at which the batch was met."""
    plan = trainer.plan
    bad = trainer.train_data.batch(index * plan.batch_seqs, plan.micro_batch)[0]
    met: list[int] = []

    def hook(module, args, out):
        if args[0].shape == bad.shape and torch.equal(args[0].cpu(), bad):
            met.append(trainer.step)
            return out * math.nan
        return None

    trainer.model.tok_embeddings.register_forward_hook(hook)
    return met


class PoisonWeights(Callback):
    """Sets the embedding weights to NaN once, after step ``at`` (after its checkpoint)."""

    def __init__(self, at: int):
        self.at, self.done = at, False

    def post_step(self, trainer, metrics):
        if trainer.step == self.at and not self.done:
            self.done = True
            with torch.no_grad():
                trainer.model.tok_embeddings.weight.fill_(math.nan)


def weights_finite(trainer: Trainer) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())


def test_stop_policy_ends_diverged_on_a_poisoned_batch(shards, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(make_cfg(shards, run, nan_policy="stop"), progress=False)
    met = poison_batch(trainer, 5)
    summary = trainer.fit()
    assert met == [5]
    assert summary["status"] == "diverged" and summary["diverged_step"] == 6
    assert "non-finite loss at step 6" in summary["reason"] and summary["steps"] == 5
    assert strict_load(run / "summary.json") == summary
    assert weights_finite(trainer)  # the NaN step was not applied
    assert not (run / "model.safetensors").exists()
    rows = strict_rows(run)
    assert rows[-1] == {"step": 6, "event": "nonfinite", "loss": None, "grad_norm": None,
                        "action": "stop"}
    assert [r["step"] for r in rows if "train_loss" in r] == [1, 2, 3, 4, 5]
    again = Trainer(make_cfg(shards, run, nan_policy="stop"), progress=False).fit()
    assert again == summary  # a diverged run is finished, not retrained


def test_skip_policy_drops_the_poisoned_batch_and_completes(shards, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(make_cfg(shards, run, nan_policy="skip"), progress=False)
    met = poison_batch(trainer, 5)
    summary = trainer.fit()
    assert met == [5]
    assert summary["status"] == "complete" and summary["nonfinite_steps"] == 1
    assert summary["steps"] == 20 and math.isfinite(summary["final_val_loss"])
    assert weights_finite(trainer)
    rows = strict_rows(run)
    events = [r for r in rows if "event" in r]
    assert events == [{"step": 6, "event": "nonfinite", "loss": None, "grad_norm": None,
                       "action": "skip"}]
    assert [r["step"] for r in rows if "train_loss" in r] == [s for s in range(1, 21) if s != 6]


def test_rollback_policy_reloads_the_checkpoint_and_skips_the_batches_since(shards, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(make_cfg(shards, run, nan_policy="rollback", checkpoint_every=2),
                      progress=False)
    met = poison_batch(trainer, 5)
    summary = trainer.fit()
    assert met == [5]  # never met again: batches 4 and 5 are skipped after the rollback
    assert summary["status"] == "complete" and summary["nonfinite_steps"] == 1
    assert summary["steps"] == 20 and trainer.data_offset == 2
    rows = strict_rows(run)
    assert [r["step"] for r in rows if "train_loss" in r] == list(range(1, 21))
    event = next(r for r in rows if "event" in r)
    assert event["action"] == "rollback" and (event["step"], event["at_step"]) == (4, 6)
    assert rows.index(event) == 4  # after step 4's row, before the replayed step 5


@pytest.mark.parametrize("policy, status, step", [
    ("stop", "diverged", 7),
    ("skip", "diverged", 10),  # NaN weights stay NaN: 3 skips, then the 4th gives up
    ("rollback", "complete", None),  # step 6's checkpoint holds finite weights
])
def test_nan_weights_mid_run(shards, tmp_path, policy, status, step):
    run = tmp_path / "run"
    cfg = make_cfg(shards, run, nan_policy=policy, checkpoint_every=2, nan_retries=3)
    trainer = Trainer(cfg, progress=False)
    trainer.callbacks.append(PoisonWeights(at=6))
    summary = trainer.fit()
    assert summary["status"] == status and summary.get("diverged_step") == step
    strict_load(run / "summary.json")
    strict_rows(run)
    if policy == "rollback":
        assert weights_finite(trainer) and math.isfinite(summary["final_val_loss"])


@pytest.mark.parametrize("policy", ["stop", "skip", "rollback"])
def test_lr_1e6_is_never_complete(shards, tmp_path, policy):
    run = tmp_path / "run"
    summary = Trainer(make_cfg(shards, run, lr=1e6, nan_policy=policy), progress=False).fit()
    assert summary["status"] == "diverged" and summary["diverged_step"] >= 2
    on_disk = strict_load(run / "summary.json")
    assert on_disk["status"] == "diverged" and on_disk["reason"].startswith("non-finite")
    assert on_disk["final_val_loss"] is None or math.isfinite(on_disk["final_val_loss"])
    assert summary["tokens"] == summary["steps"] * BATCH < 20 * BATCH
    strict_rows(run)


class Killed(Exception):
    pass


class KillAt(Callback):
    """Raises after step ``at`` (and its checkpoint): a run killed mid-way."""

    def __init__(self, at: int):
        self.at = at

    def post_step(self, trainer, metrics):
        if trainer.step == self.at:
            raise Killed


def test_resume_after_a_rollback_reads_the_same_batches(shards, tmp_path):
    """The data offset a rollback leaves is saved in the checkpoint: a run resumed after it
    continues exactly as an uninterrupted one."""
    def trainer(out: Path) -> Trainer:
        t = Trainer(make_cfg(shards, out, nan_policy="rollback", checkpoint_every=2),
                    progress=False)
        poison_batch(t, 5)
        return t

    trainer(tmp_path / "straight").fit()
    killed = trainer(tmp_path / "killed")
    killed.callbacks.append(KillAt(10))
    with pytest.raises(Killed):
        killed.fit()
    resumed = trainer(tmp_path / "killed")
    resumed.fit()
    assert resumed.data_offset == 2
    losses = [[r["train_loss"] for r in read_metrics(tmp_path / name) if "train_loss" in r]
              for name in ("straight", "killed")]
    assert len(losses[0]) == 20 and losses[0] == losses[1]


def test_loss_spikes_are_logged_as_events(shards, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(make_cfg(shards, run, spike_factor=2.0, spike_window=8), progress=False)
    step = trainer.train_step

    def spiky():  # the loss reported at step 15 is 5x the real one (a spike, not a NaN)
        metrics = step()
        if metrics["step"] == 15:
            metrics["train_loss"] *= 5
        return metrics

    trainer.train_step = spiky
    trainer.fit()
    events = [r for r in strict_rows(run) if r.get("event") == "loss_spike"]
    assert [r["step"] for r in events] == [15]
    assert events[0]["train_loss"] > 2 * events[0]["spike_median"]


def test_nan_policy_config():
    with pytest.raises(ConfigError, match="nan_policy: 'ignore' is not one of"):
        TrainConfig.from_dict({"nan_policy": "ignore"})
    with pytest.raises(ConfigError, match="nan_retries"):
        TrainConfig(nan_retries=-1)
    with pytest.raises(ConfigError, match="spike_factor"):
        TrainConfig(spike_factor=0.5)


def test_old_run_config_without_the_new_fields_still_resumes(shards, tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg(shards, run, tokens=2 * BATCH)
    run.mkdir()
    old = {k: v for k, v in cfg.as_dict().items()
           if k not in ("nan_policy", "nan_retries", "spike_factor", "spike_window")}
    (run / "config.json").write_text(json.dumps(old))
    assert Trainer(cfg, progress=False).fit()["status"] == "complete"


def test_cli_train_reports_a_diverged_run(shards, tmp_path, capsys):
    from scalinglab.cli import main

    code = main(["train", "--preset", "tiny", "--data", str(shards), "--tokens", "5120",
                 "--out", str(tmp_path / "run"), "--quiet", "model.max_seq_len=32",
                 "batch_tokens=512", "eval_tokens=512", "lr=1e6"])
    err = capsys.readouterr().err
    assert code == 1 and "diverged: non-finite" in err and "Traceback" not in err
