"""Sharded checkpoints with ``torch.distributed.checkpoint`` (DCP), and the full-model export.

A distributed checkpoint is a directory ``RUN/checkpoints/step-00000123/``: every rank writes
its own shards of the model and optimiser state (``__<rank>_0.distcp``), DCP writes the global
``.metadata`` index, and rank 0 adds ``trainer.json`` (step, elapsed time, validation loss,
the layout that wrote it). Tensors are keyed by the full model's parameter names and global
offsets, never by rank, so a checkpoint loads under any other layout or world size (DCP
reshards on load). The directory is written under a temporary name and renamed when every
rank has finished, so a killed save never looks like a checkpoint.

Loading runs no pickled code: DCP's ``.metadata`` index is a pickle of torch's own
dataclasses, so it is read with an unpickler that admits only those classes (plus
``torch.Size`` / dtypes / paths); DCP reads tensors with ``torch.load(weights_only=True)``, and
the non-tensor entries (optimiser hyper-parameters), which torch's own planner unpickles with
``weights_only=False``, are read with ``weights_only=True`` too (``SafeLoadPlanner``).
"""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import (
    BytesStorageMetadata,
    Metadata,
    StorageMeta,
    TensorStorageMetadata,
)
from torch.distributed.checkpoint.planner import ReadItem
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from scalinglab.io import atomic_write, atomic_write_json, remove_dir, replace_dir
from scalinglab.model.config import ModelConfig
from scalinglab.train.checkpoint import CHECKPOINT_DIR, CheckpointError

_STEP_DIR = re.compile(r"step-(\d+)$")
# Optimiser state and hyper-parameters keyed by parameter name ("state.<fqn>.exp_avg",
# "param_groups.<fqn>.lr"), so that a rank of another pipeline layout finds its parameters'.
_OPTIONS = StateDictOptions(flatten_optimizer_state_dict=True)
TRAINER_STATE = "trainer.json"


def _torch_dtypes() -> set[tuple[str, str]]:
    return {("torch", n) for n, v in vars(torch).items() if isinstance(v, torch.dtype)}


_DCP_METADATA = "torch.distributed.checkpoint.metadata"


class _MetadataUnpickler(pickle.Unpickler):
    """Admits DCP's metadata classes and the few torch / stdlib types they hold, nothing else.

    Exact (module, name) pairs only: protocol 4 resolves dotted names through attributes, so
    a prefix rule on the module admits ``("torch.distributed.checkpoint.filesystem",
    "os.system")``. The list is what torch's FileSystemWriter pickles into ``.metadata``
    (checked against a real save in tests/parallel/test_checkpoint_safety.py).
    """

    SAFE = frozenset({
        *((_DCP_METADATA, n) for n in (
            "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties",
            "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata",
            "_MEM_FORMAT_ENCODING")),
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
        ("torch", "Size"), ("torch.serialization", "_get_layout"),
        # checkpoint_id is a Path; Python 3.13 pickles pathlib classes from pathlib._local
        *((m, n) for m in ("pathlib", "pathlib._local")
          for n in ("PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath")),
        ("collections", "OrderedDict"),
        *_torch_dtypes(),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.SAFE:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in checkpoint metadata")
        return super().find_class(module, name)


def _check_index(path: Path, metadata: Any) -> None:
    """The shape DCP expects, so that a hand-made index fails here in one line and not deep
    inside the load: a Metadata whose entries map names to tensor or bytes metadata."""
    if not isinstance(metadata, Metadata):
        raise CheckpointError(f"{path}: not a checkpoint index (holds a "
                              f"{type(metadata).__name__})")
    entries = metadata.state_dict_metadata
    ok = isinstance(entries, dict) and all(
        isinstance(k, str) and isinstance(v, (TensorStorageMetadata, BytesStorageMetadata))
        for k, v in entries.items())
    if not ok or not isinstance(metadata.storage_data, (dict, type(None))):
        raise CheckpointError(f"{path}: malformed checkpoint index")


class SafeFileSystemReader(dcp.FileSystemReader):
    """DCP's file reader with the restricted metadata unpickler."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = Path(self.path) / ".metadata"
        try:
            with open(path, "rb") as f:
                metadata = _MetadataUnpickler(f).load()
        # An allowed class called with hostile arguments fails in its own way (KeyError from
        # _get_layout, TypeError from a dataclass): every failure is one line naming the file.
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{path}: cannot read checkpoint index: {e}") from None
        _check_index(path, metadata)
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default load planner, except that non-tensor entries are unpickled with
    ``weights_only=True``: torch's ``load_bytes`` uses ``weights_only=False``, which runs any
    code that a crafted ``.distcp`` file holds."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        try:
            obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint entry {read_item.dest_index.fqn}: refusing "
                                  f"pickled code ({first})") from None
        # Hand torch's planner (which places the value in the nested state dict) a re-saved
        # copy: it holds only what the restricted load produced, so its unsafe load is safe.
        clean = io.BytesIO()
        torch.save(obj, clean)
        clean.seek(0)
        super().load_bytes(read_item, clean)


def _first_failure(path: Path, e: CheckpointException) -> CheckpointError:
    """One line for the CLI: our own error if a rank raised one, else the first rank's."""
    errors = [exc for exc, _ in e.failures.values()]
    for exc in errors:
        if isinstance(exc, CheckpointError):
            return exc
    first = errors[0] if errors else e
    msg = (str(first).strip().splitlines() or [""])[0]
    return CheckpointError(f"{path}: cannot load checkpoint: {type(first).__name__}: {msg}")


def checkpoint_dirs(run_dir: str | Path) -> list[int]:
    """Steps of the complete distributed checkpoints in ``run_dir``, oldest first."""
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir()
                  if (m := _STEP_DIR.match(p.name)) and (p / TRAINER_STATE).exists())


def step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}"


def save(run_dir: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
         trainer_state: dict[str, Any], keep: int) -> Path:
    """Collective: every rank writes its shards; rank 0 finalises and prunes old ones."""
    final = step_dir(run_dir, step)
    tmp = final.with_name(f".{final.name}.tmp")
    rank = dist.get_rank()
    if rank == 0:
        for stale in [tmp, *final.parent.glob(".step-*.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed save or prune
    dist.barrier()
    msd, osd = get_state_dict(model, _local_optimizer(optimizer), options=_OPTIONS)
    dcp.save({"model": msd, "optimizer": osd}, checkpoint_id=str(tmp))
    dist.barrier()
    if rank == 0:
        atomic_write_json(tmp / TRAINER_STATE, trainer_state)
        replace_dir(tmp, final)  # the old step-N (a re-save) is deleted only after this
        for old in checkpoint_dirs(run_dir)[:-max(1, keep)]:
            remove_dir(step_dir(run_dir, old))
    dist.barrier()
    return final


def _local_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimiser whose state this rank holds: ZeRO-1's local AdamW over its share of the
    parameters (their state is saved under the parameters' names, so a checkpoint of a
    ZeRO-1 run loads into any other layout and back), otherwise ``optimizer`` itself."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer


def load(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Collective: fill ``model`` and ``optimizer`` (any layout) from checkpoint ``path``;
    returns the trainer state saved beside the shards."""
    # Empty state dicts in this layout's shapes and shards; DCP fills them from the files.
    optimizer = _local_optimizer(optimizer)
    msd, osd = get_state_dict(model, optimizer, options=_OPTIONS)
    state = {"model": msd, "optimizer": osd}
    try:
        dcp.load(state, storage_reader=SafeFileSystemReader(str(path)),
                 planner=SafeLoadPlanner())
    except CheckpointException as e:  # a BaseException holding each rank's error
        raise _first_failure(path, e) from None
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"], options=_OPTIONS)
    return json.loads((path / TRAINER_STATE).read_text())


def full_state_dict(model: nn.Module, leader: bool) -> dict[str, torch.Tensor]:
    """Collective: the unsharded parameters on rank 0 (all pipeline stages merged).

    Every rank of a pipeline stage gathers its stage's full tensors (FSDP all-gather, TP
    ``full_tensor``); one ``leader`` per stage then sends them to rank 0.
    """
    opts = StateDictOptions(full_state_dict=True, cpu_offload=False)
    local = get_model_state_dict(model, options=opts)
    local = {k: v.detach().cpu() for k, v in local.items()} if leader else {}
    parts: list[Any] = [None] * dist.get_world_size() if dist.get_rank() == 0 else []
    dist.gather_object(local, parts if dist.get_rank() == 0 else None, dst=0)
    if dist.get_rank() != 0:
        return {}
    merged: dict[str, torch.Tensor] = {}
    for part in parts:
        merged.update(part)
    return merged


def export(run_dir: str | Path, model: nn.Module, cfg: ModelConfig, leader: bool) -> None:
    """Collective: rank 0 writes ``model.safetensors`` + ``model_config.json``, the same
    files a single-process run exports (``scalinglab.train.checkpoint.load_model`` reads them)."""
    state = full_state_dict(model, leader)
    if dist.get_rank() != 0:
        return
    if cfg.tie_embeddings:
        state.pop("output.weight", None)
    state = {k: v.contiguous() for k, v in sorted(state.items())}
    atomic_write(Path(run_dir) / "model.safetensors", lambda p: save_file(state, str(p)))
    atomic_write_json(Path(run_dir) / "model_config.json", cfg.as_dict())
