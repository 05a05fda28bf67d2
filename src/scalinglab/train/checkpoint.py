"""Checkpoints and exported weights, written atomically and loaded without pickled code.

Training checkpoints (``RUN/checkpoints/step-00000123.pt``) hold the model, optimiser,
step, data position and RNG state as tensors and plain containers; they are read with
``torch.load(weights_only=True)``, which refuses to execute pickled code. The final model is
exported as ``RUN/model.safetensors`` beside ``RUN/model_config.json`` for evaluation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from scalinglab.errors import ScalinglabError
from scalinglab.model.config import ModelConfig
from scalinglab.model.transformer import Transformer
from scalinglab.utils import strict_json

CHECKPOINT_DIR = "checkpoints"
_STEP_RE = re.compile(r"step-(\d+)\.pt$")


class CheckpointError(ScalinglabError, ValueError):
    """A checkpoint or exported model that cannot be read; the message names the file."""


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, data: Any) -> None:
    _atomic(Path(path), lambda p: Path(p).write_text(strict_json.dumps(data, indent=2) + "\n"))


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _STEP_RE.search(p.name)))


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` for ``step`` atomically and drop all but the newest ``keep``."""
    path = Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"
    for stale in path.parent.glob(".step-*.tmp-*"):  # torn writes of a killed earlier session
        stale.unlink(missing_ok=True)
    _atomic(path, lambda p: torch.save(state, p))
    for old in checkpoint_steps(run_dir)[:-max(1, keep)]:
        (Path(run_dir) / CHECKPOINT_DIR / f"step-{old:08d}.pt").unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{path}: cannot load checkpoint: {e}") from None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    steps = checkpoint_steps(run_dir)
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{steps[-1]:08d}.pt" if steps else None


def export_model(run_dir: str | Path, model: torch.nn.Module, cfg: ModelConfig) -> Path:
    """Write ``model.safetensors`` (tied weights stored once) and ``model_config.json``."""
    run_dir = Path(run_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if cfg.tie_embeddings:
        state.pop("output.weight", None)
    _atomic(run_dir / "model.safetensors", lambda p: save_file(state, str(p)))
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
