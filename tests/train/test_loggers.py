"""Logger backends: TensorBoard event files and offline W&B runs hold the same scalars as
``metrics.jsonl`` (read back with each tool's own reader); bad backends are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalinglab.config import ConfigError
from scalinglab.train.loggers import parse_backends, scalars, study_of
from scalinglab.train.metrics import read_metrics
from scalinglab.train.trainer import train
from tests.train.test_trainer import make_cfg

KEYS = ("train_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "val_loss")


def test_tensorboard_events_hold_the_metrics_rows(shards, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(make_cfg(shards, run, tokens=6 * 512, logger="jsonl,tensorboard"), progress=False)
    rows = read_metrics(run)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert set(KEYS) <= tags
    for key in tags:
        want = [(r["step"], r[key]) for r in rows if key in r]
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in want], key
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), key
    assert len(events.Scalars("train_loss")) == 6 and len(events.Scalars("val_loss")) >= 1


def test_wandb_is_offline_by_default_and_logs_the_rows(shards, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "study" / "runs" / "n1-d1"
    train(make_cfg(shards, run, tokens=3 * 512, logger="wandb"), progress=False)
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run / "wandb").iterdir())
    history = _wandb_history(wandb, next(offline[0].glob("*.wandb")))
    assert {"_run": ("study", "n1-d1")} in history  # grouped under the study
    history = [h for h in history if "_run" not in h]
    rows = read_metrics(run)
    assert [h["_step"] for h in history] == [r["step"] for r in rows]
    for h, r in zip(history, rows, strict=True):
        assert h["train_loss"] == pytest.approx(r["train_loss"], rel=1e-9)
        assert h["lr"] == pytest.approx(r["lr"], rel=1e-9)


def _wandb_history(wandb, path: Path) -> list[dict]:
    """The history rows of an offline ``.wandb`` file: wandb's own protobuf ``Record``s in
    the LevelDB log format that wandb's datastore writes (7-byte header, 32 KiB blocks, each
    chunk ``crc32 (4) | length (2) | type (1: full, 2: first, 3: middle, 4: last)``)."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(pending)
    rows = []
    for raw in records:
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "run":
            rows.append({"_run": (rec.run.run_group, rec.run.display_name)})
        if rec.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in rec.history.item})
    return rows


def test_study_runs_are_grouped_under_the_study(tmp_path):
    assert study_of(tmp_path / "mystudy" / "runs" / "n1e6-d2e7") == ("mystudy", "n1e6-d2e7")
    assert study_of(tmp_path / "alone") == (None, "alone")


def test_backend_names_are_checked(shards, tmp_path):
    assert parse_backends("jsonl,tensorboard,wandb,tensorboard") == ["tensorboard", "wandb"]
    assert parse_backends("jsonl") == []
    with pytest.raises(ConfigError, match="unknown backend 'mlflow'; expected .*jsonl"):
        make_cfg(shards, tmp_path / "r", logger="jsonl,mlflow")


def test_scalars_are_the_numeric_entries():
    row = {"step": 3, "train_loss": 2.5, "lr": 1e-3, "loss_spike": True, "event": "x",
           "val_loss": float("nan")}
    assert scalars(row) == {"train_loss": 2.5, "lr": 1e-3}
