"""Checkpoints and exported weights, written atomically and loaded without pickled code.

Training checkpoints (``RUN/checkpoints/step-00000123.pt``) hold the model, optimiser,
step, data position and RNG state as tensors and plain containers; they are read with
``torch.load(weights_only=True)``, which refuses to execute pickled code. The final model is
exported as ``RUN/model.safetensors`` beside ``RUN/model_config.json`` for evaluation.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write, atomic_write_json
from scalinglab.model.config import ModelConfig
from scalinglab.model.transformer import Transformer

CHECKPOINT_DIR = "checkpoints"
_STEP_RE = re.compile(r"step-(\d+)\.pt$")


class CheckpointError(ScalinglabError, ValueError):
    """A checkpoint or exported model that cannot be read; the message names the file."""


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _STEP_RE.search(p.name)))


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` for ``step`` atomically and drop all but the newest ``keep``."""
    path = Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"
    for stale in path.parent.glob(".step-*.tmp-*"):  # torn writes of a killed earlier session
        stale.unlink(missing_ok=True)  # safe: the run directory is locked by its one writer
    atomic_write(path, lambda p: _torch_save(state, p))
    for old in checkpoint_steps(run_dir)[:-max(1, keep)]:
        (Path(run_dir) / CHECKPOINT_DIR / f"step-{old:08d}.pt").unlink(missing_ok=True)
    return path


def _torch_save(state: dict[str, Any], path: Path) -> None:
    # Through a Python file object so that a full disk raises OSError(ENOSPC), which
    # atomic_write reports with the path (torch.save(state, name) raises a bare RuntimeError).
    with open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{path}: cannot load checkpoint: {e}") from None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    steps = checkpoint_steps(run_dir)
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{steps[-1]:08d}.pt" if steps else None


REQUIRED_KEYS = ("model", "optimizer", "step", "elapsed", "rng")


def load_latest_valid(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads and holds a full training state, or None.

    A newer one that is torn or truncated (a kill or a full disk mid-save, a bad copy) is
    skipped with a warning: resuming from the one before it costs a few steps, failing the
    run costs all of them. If none is valid the newest one's error is raised.
    """
    steps = checkpoint_steps(run_dir)
    first_error: CheckpointError | None = None
    for step in reversed(steps):
        path = Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"
        try:
            state = load_checkpoint(path)
            missing = [k for k in REQUIRED_KEYS if k not in state]
            if missing:
                raise CheckpointError(f"{path}: not a training checkpoint (no {missing})")
        except CheckpointError as e:
            first_error = first_error or e
            print(f"warning: skipping unreadable checkpoint: {e}", file=sys.stderr)
            continue
        return path, state
    if first_error is not None:
        raise first_error
    return None


def export_model(run_dir: str | Path, model: torch.nn.Module, cfg: ModelConfig) -> Path:
    """Write ``model.safetensors`` (tied weights stored once) and ``model_config.json``."""
    run_dir = Path(run_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if cfg.tie_embeddings:
        state.pop("output.weight", None)
    atomic_write(run_dir / "model.safetensors", lambda p: save_file(state, str(p)))
    atomic_write_json(run_dir / "model_config.json", cfg.as_dict())
    return run_dir / "model.safetensors"


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Transformer:
    """Load an exported model from a run directory or a ``.safetensors`` file beside its
    ``model_config.json``."""
    path = Path(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    config_path = weights.parent / "model_config.json"
    if not weights.exists():
        raise CheckpointError(f"{weights}: no exported model (has the run finished?)")
    if not config_path.exists():
        raise CheckpointError(f"{config_path}: missing model config beside the weights")
    cfg = ModelConfig.from_file(config_path)
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError for a bad file
        raise CheckpointError(f"{weights}: not a safetensors file: {e}") from None
    with torch.device("meta"):
        model = Transformer(cfg)
    model = model.to_empty(device="cpu")
    if cfg.tie_embeddings:
        model.output.weight = model.tok_embeddings.weight
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (cfg.tie_embeddings and m == "output.weight")]
    if missing or unexpected:
        raise CheckpointError(f"{weights}: does not fit {config_path}: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]} ({len(missing)} and "
                              f"{len(unexpected)} in all)")
    return model.to(device)
