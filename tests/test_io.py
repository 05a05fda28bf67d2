"""scalinglab.io: atomic fsynced writes, strict JSON, JSON lines, and the directory lock."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scalinglab import io
from scalinglab.scaling.fits_io import write_fits
from scalinglab.train import checkpoint as ckpt

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def fsynced(monkeypatch) -> list[Path]:
    """Records the path behind every fsynced descriptor (a temp file or a directory)."""
    seen: list[Path] = []
    real = os.fsync

    def spy(fd):
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def _synced_before_rename(seen: list[Path], target: Path) -> bool:
    """The target's temp file and then its directory were fsynced."""
    names = [p.name for p in seen]
    temp = f".{target.name}.tmp-{os.getpid()}"
    return temp in names and target.parent in seen[names.index(temp):]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_checkpoints_and_fits_are_fsynced_with_their_directory(tmp_path, fsynced):
    path = ckpt.save_checkpoint(tmp_path, 3, {"w": torch.zeros(2)}, keep=1)
    assert _synced_before_rename(fsynced, path)
    fsynced.clear()
    write_fits(tmp_path / "fits.json", {"E": 1.0})
    assert _synced_before_rename(fsynced, tmp_path / "fits.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "fits.json"]


def test_json_is_strict(tmp_path):
    path = io.atomic_write_json(tmp_path / "a.json", {"x": math.nan, "y": [math.inf, 1.5],
                                                      "z": torch.tensor(float("nan"))})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": None, "y": [None, 1.5], "z": None}


def test_failed_write_keeps_the_old_file_and_names_the_path(tmp_path):
    path = io.atomic_write_text(tmp_path / "f.txt", "old")

    def boom(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(io.StorageError, match=r"f\.txt: cannot write: No space left"):
        io.atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # the temp file is gone


def test_jsonl_drops_a_torn_tail_and_names_a_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    writer = io.JsonlWriter(path)
    writer.write({"step": 1, "loss": math.nan})
    writer.close()
    path.write_text(path.read_text() + '{"step": 2, "lo')  # killed mid-append
    assert io.read_jsonl(path) == [{"step": 1, "loss": None}]
    path.write_text('{"step": 1}\n{oops\n{"step": 3}\n')
    with pytest.raises(io.JsonlError, match=r"m\.jsonl:2: not valid JSON"):
        io.read_jsonl(path)


def test_replace_dir_swaps_a_whole_directory(tmp_path):
    final, new = tmp_path / "index", tmp_path / "index.tmp"
    final.mkdir()
    (final / "old").write_text("1")
    new.mkdir()
    (new / "new").write_text("2")
    io.replace_dir(new, final)
    assert [p.name for p in final.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


HOLD = """
import sys, time
from scalinglab.io import locked
with locked(sys.argv[1], "a test"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_writer_gets_one_line_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], text=True,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(io.LockedError) as err, io.locked(tmp_path):
            pass
        message = str(err.value)
        assert f"process {holder.pid}" in message and str(tmp_path) in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    with io.locked(tmp_path) as lock:  # the kernel released the killed holder's lock
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()  # removed on release
