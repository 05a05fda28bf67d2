"""Text input of the tokenizer lab: plain text files, JSONL, or a directory of either.

* ``*.txt``: split into documents at blank lines, in groups of about ``TXT_DOC_CHARS``
  characters (a whole book as one document would make one giant multi-word "word").
* ``*.jsonl`` / ``*.jsonl.gz``: one JSON object per line; its ``text`` field is the document.
* a corpus directory written by ``scalinglab data prepare`` (it holds ``stats.json``): its
  mixed corpus ``documents-*.jsonl`` (not the per-part files under ``parts/``);
* any other directory: every ``*.jsonl``, ``*.jsonl.gz`` and ``*.txt`` below it, in sorted
  order.

A malformed line is an error naming ``file:line``: silently training on part of the input
would be a quiet data loss.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from scalinglab.errors import ScalinglabError

TXT_DOC_CHARS = 8000
_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt")


def input_files(paths: list[str]) -> list[Path]:
    """The text files named by ``paths`` (files or directories), in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and (path / "stats.json").is_file():
            found = sorted(path.glob("documents-*.jsonl"))
            if not found:
                raise ScalinglabError(f"{path}: prepared corpus without documents-*.jsonl")
            files += found
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))
            if not found:
                raise ScalinglabError(f"{path}: no .jsonl, .jsonl.gz or .txt files inside")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ScalinglabError(f"{path}: no such file or directory")
    return files


def _txt_documents(path: Path) -> Iterator[str]:
    group: list[str] = []
    size = 0
    for para in path.read_text(encoding="utf-8").split("\n\n"):
        if not para.strip():
            continue
        group.append(para)
        size += len(para)
        if size >= TXT_DOC_CHARS:
            yield "\n\n".join(group)
            group, size = [], 0
    if group:
        yield "\n\n".join(group)


def _jsonl_documents(path: Path, field: str) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)[field]
            except (json.JSONDecodeError, TypeError, KeyError):
                raise ScalinglabError(f"{path}:{lineno}: not a JSON object with a string "
                                      f"{field!r} field") from None
            if not isinstance(text, str):
                raise ScalinglabError(f"{path}:{lineno}: field {field!r} is not a string")
            yield text


def read_texts(paths: list[str], field: str = "text") -> Iterator[str]:
    """Documents of every input file, in order."""
    for path in input_files(paths):
        try:
            if path.name.endswith((".jsonl", ".jsonl.gz")):
                yield from _jsonl_documents(path, field)
            else:  # anything else named explicitly is read as plain text
                yield from _txt_documents(path)
        except UnicodeDecodeError:
            raise ScalinglabError(f"{path}: not valid UTF-8") from None
