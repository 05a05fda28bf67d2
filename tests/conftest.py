"""Shared fixtures: tiny token shards written directly in the trainer's format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scalinglab.data.shards import write_shard


def make_shards(directory: Path, vocab_size: int = 64, train_tokens: int = 40_000,
                val_tokens: int = 4_000, seed: int = 0) -> Path:
    """Shards of a learnable synthetic language: repeated random 'words' with an EOT of 0."""
    rng = np.random.default_rng(seed)
    words = [rng.integers(1, vocab_size, size=rng.integers(2, 6)) for _ in range(50)]

    def stream(n: int) -> np.ndarray:
        out: list[int] = []
        while len(out) < n:
            for _ in range(rng.integers(20, 60)):
                out.extend(words[rng.integers(len(words))])
            out.append(0)
        return np.array(out[:n])

    write_shard(directory, "train", 0, stream(train_tokens), vocab_size=vocab_size, eot_id=0)
    write_shard(directory, "val", 0, stream(val_tokens), vocab_size=vocab_size, eot_id=0)
    return directory


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    return make_shards(tmp_path / "shards")


_HOLD = """
import sys, time
from scalinglab.io import locked
with locked(sys.argv[1], "a test"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder():
    """``hold(directory) -> pid``: another process takes the directory's writer lock (as a
    running trainer / sweep / prepare would) and keeps it until the test ends."""
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    procs: list[subprocess.Popen] = []

    def hold(directory: Path) -> int:
        proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(directory)], text=True,
                                stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": src})
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc.pid

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()
