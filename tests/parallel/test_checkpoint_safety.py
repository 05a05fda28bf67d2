"""Distributed checkpoints load without running pickled code, and list only complete saves."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from scalinglab.parallel.checkpoint import SafeFileSystemReader, checkpoint_dirs
from scalinglab.train.checkpoint import CheckpointError


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_metadata_with_foreign_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".metadata").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError, match="refusing .*system"):
        SafeFileSystemReader(str(tmp_path)).read_metadata()


def test_only_finished_checkpoints_count(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    for name in ("step-00000003", "step-00000006", ".step-00000009.tmp"):
        (ckpts / name).mkdir(parents=True)
    (ckpts / "step-00000003" / "trainer.json").write_text("{}")
    (ckpts / ".step-00000009.tmp" / "trainer.json").write_text("{}")
    assert checkpoint_dirs(tmp_path) == [3]  # 6 has no trainer.json: its save was killed
