"""Benchmark input: the given JSONL/text paths, else the default corpus (fetched once, cached)."""

from __future__ import annotations

import zlib

from scalinglab.tokenizer.corpus import read_texts


def load_texts(paths: list[str]) -> list[str]:
    if not paths:
        from scalinglab.data.default_corpus import fetch_default_corpus  # the data stage's

        paths = [str(p) for p in fetch_default_corpus().files()]
    return list(read_texts(paths))


def split_heldout(texts: list[str], every: int = 10) -> tuple[list[str], list[str]]:
    """Deterministic document split: about 1 in ``every`` documents is held out."""
    held = [zlib.crc32(t.encode()) % every == 0 for t in texts]
    return ([t for t, h in zip(texts, held, strict=True) if not h],
            [t for t, h in zip(texts, held, strict=True) if h])
