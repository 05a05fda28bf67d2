"""Distributed checkpoints load without running pickled code, and list only complete saves."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict

from scalinglab.parallel import checkpoint as dckpt
from scalinglab.parallel.checkpoint import SafeFileSystemReader, checkpoint_dirs
from scalinglab.train.checkpoint import CheckpointError


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _str(s: str) -> bytes:
    raw = s.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def _call(module: str, name: str, *args: str) -> bytes:
    """A protocol-4 pickle that calls ``module.name(*args)``: STACK_GLOBAL, tuple, REDUCE."""
    body = _str(module) + _str(name) + pickle.STACK_GLOBAL
    body += pickle.MARK + b"".join(_str(a) for a in args) + pickle.TUPLE + pickle.REDUCE
    return pickle.PROTO + bytes([4]) + body + pickle.STOP


def _read(directory: Path, data: bytes):
    (directory / ".metadata").write_bytes(data)
    return SafeFileSystemReader(str(directory)).read_metadata()


def test_metadata_with_foreign_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".metadata").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError, match="refusing .*system"):
        SafeFileSystemReader(str(tmp_path)).read_metadata()


@pytest.mark.parametrize("module, name", [
    ("torch.distributed.checkpoint.filesystem", "os.system"),  # the reported exploit
    ("torch.distributed.checkpoint.metadata", "os.system"),
    ("torch.distributed.checkpoint.filesystem", "dataclasses.builtins.exec"),  # builtins
    ("torch.distributed.checkpoint.logger", "functools.partial"),
    ("torch.distributed.checkpoint.state_dict", "functools.partial"),
    ("torch.distributed.checkpoint.filesystem", "torch.serialization.os.system"),  # getattr chain
    ("torch.distributed.checkpoint.filesystem", "pickle.loads"),
    ("torch.distributed.checkpoint.metadata", "Metadata.__init__.__globals__"),
])
def test_dotted_globals_are_refused(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(CheckpointError, match="refusing"):
        _read(tmp_path, _call(module, name, f"import os; os.system('touch {marker}')"
                              if "exec" in name else f"touch {marker}"))
    assert not marker.exists()


@pytest.mark.parametrize("module, name, arg", [
    ("torch.serialization", "_get_layout", "os.system"),  # KeyError inside torch
    ("torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING", "rm -rf /"),
    ("torch.distributed.checkpoint.metadata", "Metadata", "x"),  # builds, not a dict
    ("collections", "OrderedDict", "not pairs"),
])
def test_allowed_class_with_hostile_arguments_is_one_line_error(tmp_path: Path, module: str,
                                                                name: str, arg: str) -> None:
    one_line = r"\.metadata: (cannot read|not a checkpoint|malformed)"
    with pytest.raises(CheckpointError, match=one_line):
        _read(tmp_path, _call(module, name, arg))


def test_index_that_is_not_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint index .*Size"):
        _read(tmp_path, pickle.dumps(torch.Size([2, 3]), protocol=4))


class _Recorder(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.seen: set[tuple[str, str]] = set()

    def find_class(self, module, name):
        self.seen.add((module, name))
        return super().find_class(module, name)


def _save_real_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """A DCP checkpoint written by torch itself, with bf16 / int64 tensors and non-tensors."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    msd, osd = get_state_dict(model, opt, options=dckpt._OPTIONS)
    extra = {"bf16": torch.ones(3, dtype=torch.bfloat16), "ids": torch.arange(5)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no process group: assuming a single process"
        dcp.save({"model": msd, "optimizer": osd, "extra": extra}, checkpoint_id=str(path))
    (path / dckpt.TRAINER_STATE).write_text(json.dumps({"step": 1}))
    return model, extra


def test_real_dcp_metadata_loads_and_needs_only_allowed_globals(tmp_path: Path) -> None:
    path = tmp_path / "step-00000001"
    model, extra = _save_real_checkpoint(path)
    with open(path / ".metadata", "rb") as f:
        rec = _Recorder(f)
        rec.load()
    assert rec.seen <= dckpt._MetadataUnpickler.SAFE, rec.seen - dckpt._MetadataUnpickler.SAFE
    fresh = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = dckpt.load(path, fresh, opt)
        got = {"bf16": torch.zeros(3, dtype=torch.bfloat16), "ids": torch.zeros(5).long()}
        dcp.load({"extra": got}, storage_reader=SafeFileSystemReader(str(path)))
    assert state == {"step": 1}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert opt.state_dict()["state"][0]["step"] == 1
    assert all(torch.equal(got[k], extra[k]) for k in extra)


class _Touch:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_non_tensor_entry_with_pickled_code_is_refused(tmp_path: Path) -> None:
    """torch's planner unpickles non-tensor entries with weights_only=False; ours does not."""
    path, marker = tmp_path / "step-00000001", tmp_path / "pwned"
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    msd, osd = get_state_dict(model, opt, options=dckpt._OPTIONS)
    lr_key = next(k for k in osd if k.endswith(".lr"))
    osd[lr_key] = _Touch(marker)  # a crafted .distcp: the lr entry is code
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": msd, "optimizer": osd}, checkpoint_id=str(path))
        fresh = nn.Linear(4, 3)
        with pytest.raises(CheckpointError, match="lr: refusing pickled code"):
            dckpt.load(path, fresh, torch.optim.AdamW(fresh.parameters(), lr=1e-3))
    assert not marker.exists()


def test_load_of_a_crafted_index_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "step-00000001"
    _save_real_checkpoint(path)
    (path / ".metadata").write_bytes(_call("torch.distributed.checkpoint.filesystem",
                                           "os.system", f"touch {tmp_path / 'pwned'}"))
    fresh = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    with pytest.raises(CheckpointError, match=r"\.metadata: cannot read checkpoint index: "
                                              r"refusing .*os\.system"):
        dckpt.load(path, fresh, torch.optim.AdamW(fresh.parameters()))
    assert not (tmp_path / "pwned").exists()


def test_only_finished_checkpoints_count(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    for name in ("step-00000003", "step-00000006", ".step-00000009.tmp"):
        (ckpts / name).mkdir(parents=True)
    (ckpts / "step-00000003" / "trainer.json").write_text("{}")
    (ckpts / ".step-00000009.tmp" / "trainer.json").write_text("{}")
    assert checkpoint_dirs(tmp_path) == [3]  # 6 has no trainer.json: its save was killed
