"""The distributed save never leaves a partly deleted step directory under a step name: the
old one is renamed aside before the new one takes its name, and deleted after."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from scalinglab.parallel import checkpoint as dckpt


class _Killed(BaseException):
    """The process dies here (nothing after this point runs)."""


@pytest.fixture
def one_rank():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _model(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def test_kill_while_replacing_a_step_leaves_a_whole_checkpoint(one_rank, tmp_path, monkeypatch):
    run = tmp_path / "run"
    dckpt.save(run, 3, *_model(0), {"step": 3}, keep=5)
    dckpt.save(run, 5, *_model(1), {"step": 5}, keep=5)  # the save a resume from 3 redoes
    real_rmtree = shutil.rmtree

    def killed_midway(path, *args, **kwargs):
        shards = sorted(Path(path).glob("*.distcp")) if Path(path).exists() else []
        if not shards:
            return real_rmtree(path, *args, **kwargs)
        shards[0].unlink()  # the deletion got this far when the process was killed
        raise _Killed

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    new_model, new_opt = _model(2)
    with pytest.raises(_Killed):
        dckpt.save(run, 5, new_model, new_opt, {"step": 5, "again": True}, keep=5)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)


    assert dckpt.checkpoint_dirs(run) == [3, 5]
    for step in dckpt.checkpoint_dirs(run):  # every checkpoint that counts loads whole
        model, opt = _model(9)
        state = dckpt.load(dckpt.step_dir(run, step), model, opt)
        assert state["step"] == step
    assert state.get("again") and torch.equal(model.weight, new_model.weight)
