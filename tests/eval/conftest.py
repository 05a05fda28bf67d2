"""Fixtures for the evaluation tests: tiny byte-level models, exported like a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import Transformer, build_model
from scalinglab.train.checkpoint import export_model


def byte_model(position: str = "learned", max_seq_len: int = 32, seed: int = 0,
               n_kv_heads: int | None = None) -> Transformer:
    """A random tiny model over the byte vocabulary (257), with sharpened logits so that
    log-likelihoods differ clearly between continuations (``n_kv_heads``: grouped-query)."""
    cfg: ModelConfig = tiny().merge({"vocab_size": 257, "max_seq_len": max_seq_len,
                                     "position": position, "n_kv_heads": n_kv_heads})
    model = build_model(cfg, seed=seed)
    with torch.no_grad():
        model.tok_embeddings.weight.mul_(5.0)  # std 0.1: a peaked, input-dependent output
    return model.eval()


@pytest.fixture(scope="session")
def byte_run(tmp_path_factory) -> Path:
    """A run directory holding an exported byte-level model (no tokenizer file: bytes)."""
    run = tmp_path_factory.mktemp("run")
    model = byte_model(max_seq_len=64)
    export_model(run, model, model.config)
    return run
