"""The weights to export: a run's ``model.safetensors``, a ``checkpoints/step-N.pt`` or a
sharded distributed checkpoint ``checkpoints/step-N/`` (DCP, any layout that wrote it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException

from scalinglab.eval.model_io import _run_model_config, load_eval_model
from scalinglab.model.transformer import Transformer
from scalinglab.parallel.checkpoint import (
    SafeFileSystemReader,
    SafeLoadPlanner,
    checkpoint_dirs,
    step_dir,
)
from scalinglab.train.checkpoint import CheckpointError


def load_source(path: str | Path) -> tuple[Transformer, Path]:
    """(model, run directory) for ``path``: a run directory, ``.safetensors``, ``.pt`` or
    DCP step directory. A run directory without an exported model (a distributed run stopped
    before its end) falls back to its newest sharded checkpoint."""
    path = Path(path)
    if (path / ".metadata").is_file():
        return load_dcp_model(path), path.parent.parent
    if path.is_dir() and not (path / "model.safetensors").exists():
        steps = checkpoint_dirs(path)
        if steps:
            return load_dcp_model(step_dir(path, steps[-1])), path
    model = load_eval_model(path)
    run_dir = path if path.is_dir() else (
        path.parent.parent if path.suffix == ".pt" else path.parent)
    return model, run_dir


def load_dcp_model(step: Path) -> Transformer:
    """The full model from a DCP checkpoint, in this one process (DCP reshards on load)."""
    cfg = _run_model_config(step.parent.parent / "config.json")
    model = Transformer(cfg)
    target = {k: v for k, v in model.state_dict().items()
              if not (cfg.tie_embeddings and k == "output.weight")}
    reader = SafeFileSystemReader(str(step))
    stored = {k.removeprefix("model.") for k in reader.read_metadata().state_dict_metadata
              if k.startswith("model.")}
    missing = sorted(set(target) - stored)
    if missing:
        raise CheckpointError(f"{step}: checkpoint lacks {missing[:3]} ({len(missing)} in all) "
                              f"for the model in {step.parent.parent / 'config.json'}")
    state = {"model": target}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no process group: assuming a single process"
        try:
            dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner())
        except CheckpointException as e:  # a torn shard: one line naming the directory
            first = next(iter(e.failures.values()), (e, None))[0]
            msg = (str(first).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(f"{step}: cannot load checkpoint: {msg}") from None
    with torch.no_grad():
        for k, v in state["model"].items():  # dcp.load fills in place; copy in case it did not
            model.state_dict()[k].copy_(v)
    return model.eval()
