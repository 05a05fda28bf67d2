"""Fixtures for the adaptation tests: a tiny byte-level run and a task with a training split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model
from scalinglab.train.checkpoint import export_model


@pytest.fixture
def byte_run(tmp_path) -> Path:
    """An exported random tiny model over bytes (vocab 257: the byte tokenizer)."""
    run = tmp_path / "run"
    cfg = tiny().merge({"vocab_size": 257, "max_seq_len": 32})
    export_model(run, build_model(cfg, seed=0), cfg)
    return run


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def rule_task(tmp_path) -> Path:
    """A two-choice task whose answer is a fixed function of the query's letter (learnable in
    a few steps, 50% for a random model): letters a-m answer 'yes', n-z 'no'."""
    rng = random.Random(0)

    def rows(n: int) -> list[dict]:
        out = []
        for _ in range(n):
            c = rng.choice("abcdefghijklmnopqrstuvwxyz")
            out.append({"query": f"{c}{c}?", "choices": ["yes", "no"], "gold": int(c > "m")})
        return out

    write_jsonl(tmp_path / "train.jsonl", rows(160))
    write_jsonl(tmp_path / "test.jsonl", rows(60))
    yaml = tmp_path / "rule.yaml"
    yaml.write_text("name: rule\ntype: multiple_choice\nformat: mc\ntemplate: '{query}'\n"
                    "data: test.jsonl\ntrain_data: train.jsonl\n")
    return yaml
