"""Token shards: the on-disk format between the data stage and the trainer.

A shard directory holds, per split (``train``, ``val``), files ``{split}-{index:05d}.bin``:
a flat little-endian array of token ids (uint16 when the vocabulary fits, else uint32),
documents separated by the end-of-text token. Beside each ``.bin`` a ``.json`` header says::

    {"format": "scalinglab-shard", "version": 1, "dtype": "uint16", "num_tokens": 123456,
     "num_docs": 789, "vocab_size": 4096, "eot_id": 0}

The header is written after the ``.bin`` (both atomically), so a ``.bin`` without a header
is an unfinished write and is reported, never read. An optional ``meta.json`` in the directory
carries stage-level information (tokenizer path, stats); the trainer does not need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab import io as sio
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_bytes, read_json_object, require_fields

SHARD_TOKENIZER = "tokenizer.json"  # the shards' own copy of their tokenizer (data tokenize)
SHARD_FORMAT = "scalinglab-shard"
SHARD_VERSION = 1


class ShardError(ScalinglabError, ValueError):
    """A missing, malformed or inconsistent shard; the message names the file."""


def copy_shard_tokenizer(data_dir: str | Path, run_dir: str | Path) -> Path | None:
    """Copy the shards' ``tokenizer.json`` into ``run_dir`` (if both exist and the run has
    none yet), so the run is evaluated from any working directory; returns the copy."""
    src, dst = Path(data_dir) / SHARD_TOKENIZER, Path(run_dir) / SHARD_TOKENIZER
    if not src.is_file() or dst.exists():
        return None
    return atomic_write_bytes(dst, src.read_bytes())


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def write_shard(directory: str | Path, split: str, index: int, tokens: np.ndarray,
                *, vocab_size: int, eot_id: int, num_docs: int | None = None) -> Path:
    """Write one shard (``.bin`` then its ``.json`` header, each atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for_vocab(vocab_size)
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ShardError(f"{split}-{index:05d}: token ids outside [0, {vocab_size})")
    arr = tokens.astype(dtype.newbyteorder("<"), copy=False)
    stem = directory / f"{split}-{index:05d}"
    atomic_write_bytes(stem.with_suffix(".bin"), arr.tobytes())
    header = {
        "format": SHARD_FORMAT, "version": SHARD_VERSION, "dtype": dtype.name,
        "num_tokens": int(arr.size),
        "num_docs": int(num_docs if num_docs is not None else (arr == eot_id).sum()),
        "vocab_size": int(vocab_size), "eot_id": int(eot_id),
    }
    atomic_write_bytes(stem.with_suffix(".json"), (sio.dumps(header) + "\n").encode())
    return stem.with_suffix(".bin")


@dataclass
class Shard:
    path: Path
    header: dict
    tokens: np.ndarray  # memory-mapped, read-only


def _read_header(json_path: Path) -> dict:
    header = read_json_object(json_path, "shard header", ShardError)
    if header.get("format") != SHARD_FORMAT:
        raise ShardError(f"{json_path}: not a scalinglab shard header (format field)")
    require_fields(header, {"dtype": str, "num_tokens": int, "vocab_size": int, "eot_id": int},
                   f"{json_path}: shard header", ShardError)
    if header["dtype"] not in ("uint16", "uint32"):
        raise ShardError(f"{json_path}: dtype {header['dtype']!r} is not uint16 or uint32")
    return header


def open_shard(bin_path: Path) -> Shard:
    json_path = bin_path.with_suffix(".json")
    if not json_path.exists():
        raise ShardError(f"{bin_path}: no header {json_path.name} (unfinished write?)")
    header = _read_header(json_path)
    dtype = np.dtype(header["dtype"]).newbyteorder("<")
    size = bin_path.stat().st_size
    if size != header["num_tokens"] * dtype.itemsize:
        raise ShardError(
            f"{bin_path}: {size} bytes but header says {header['num_tokens']} x {dtype.name}"
        )
    tokens = np.memmap(bin_path, dtype=dtype, mode="r") if size else np.zeros(0, dtype)
    return Shard(bin_path, header, tokens)


def open_split(directory: str | Path, split: str) -> list[Shard]:
    """All shards of ``split`` in ``directory``, checked for a consistent vocabulary."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ShardError(f"{directory}: shard directory does not exist")
    shards = [open_shard(p) for p in sorted(directory.glob(f"{split}-*.bin"))]
    if not shards:
        raise ShardError(f"{directory}: no {split}-*.bin shards")
    vocabs = {s.header["vocab_size"] for s in shards}
    if len(vocabs) > 1:
        raise ShardError(f"{directory}: {split} shards disagree on vocab_size: {sorted(vocabs)}")
    return shards
