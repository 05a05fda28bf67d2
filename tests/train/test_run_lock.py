"""One writer per run directory; a failing write (disk full) is one line and exit 2."""

from __future__ import annotations

import errno

import pytest
import torch

from scalinglab.cli import main
from scalinglab.io import LockedError
from scalinglab.train.trainer import train
from tests.train.test_trainer import make_cfg


def _cli(shards, out) -> list[str]:
    return ["train", "--preset", "tiny", "--data", str(shards), "--out", str(out), "--quiet",
            "--tokens", str(8 * 512), "model.max_seq_len=32", "model.vocab_size=64",
            "batch_tokens=512", "eval_tokens=512", "checkpoint_every=4"]


def test_second_trainer_gets_one_line_and_leaves_the_run_alone(shards, tmp_path, lock_holder,
                                                                capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "train_loss": 4.0}\n')  # the holder's rows
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".step-00000002.pt.tmp-1").write_bytes(b"half a save")
    pid = lock_holder(run)
    assert main(_cli(shards, run)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"process {pid}" in err and str(run) in err
    assert (run / "metrics.jsonl").read_text() == '{"step": 1, "train_loss": 4.0}\n'
    assert (run / "checkpoints" / ".step-00000002.pt.tmp-1").exists()
    assert not (run / "config.json").exists()
    with pytest.raises(LockedError, match=f"process {pid}"):
        train(make_cfg(shards, run), progress=False)


def test_disk_full_while_checkpointing_is_one_line_and_exit_2(shards, tmp_path, monkeypatch,
                                                              capsys):
    def full(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    assert main(_cli(shards, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: train: ") and "step-00000004.pt" in err[0]
    assert "No space left on device" in err[0]
    assert not list((tmp_path / "run" / "checkpoints").iterdir())  # no temp file left behind


def test_other_oserrors_are_one_line_too(shards, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(_cli(shards, blocker / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train: ") and str(blocker) in err[0]
