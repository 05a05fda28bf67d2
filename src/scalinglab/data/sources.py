"""Readers: turn text files, JSONL (plain/.gz/.zst), Parquet and HF datasets into Documents.

A source is described by a :class:`SourceConfig` and split into :class:`Part` s (one per input
file, or one per slice of a dataset); a part is the unit the pipeline completes, marks done and
skips when resumed. Bad records (malformed JSON, bad UTF-8, a missing or non-string text field)
are skipped and counted in :class:`ReadStats` with the first few ``file:line`` examples, so no
data is dropped silently. A source that matches no input, or only empty files, is a
:class:`~scalinglab.errors.ScalinglabError` naming the path.
"""

from __future__ import annotations

import dataclasses
import enum
import glob
import gzip
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scalinglab.config import Config
from scalinglab.data.document import Document
from scalinglab.errors import ScalinglabError

MAX_EXAMPLES = 5  # ``file:line`` examples kept per skip reason
TEXT_SUFFIXES = (".txt", ".md", ".text")
# Suffixes of plain-text formats (markup, source code, configs) that a directory source takes as
# text: a folder of .rst docs or .py files needs no `kind`. What was taken is counted per
# suffix (``read.as_text.<suffix>``) and anything else in the directory is skipped and counted.
TEXT_LIKE_SUFFIXES = (
    ".rst", ".markdown", ".adoc", ".org", ".tex", ".html", ".htm", ".xml", ".csv", ".tsv",
    ".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".hpp", ".java", ".js", ".ts", ".go", ".rs",
    ".rb", ".sh", ".pl", ".lua", ".sql", ".r", ".jl", ".scala", ".kt", ".swift", ".css",
    ".yaml", ".yml", ".toml", ".cfg", ".ini", ".conf", ".log", ".po", ".srt", ".rtf",
)
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")


class SourceError(ScalinglabError, ValueError):
    """A source that cannot be read at all (missing, empty, wrong kind); names the path."""


class SourceKind(enum.StrEnum):
    auto = "auto"  # decided from the file suffixes (or a directory holding a saved HF dataset)
    text = "text"  # one document per file
    jsonl = "jsonl"  # one document per line; .gz and .zst are decompressed on the fly
    parquet = "parquet"  # one document per row
    hf = "hf"  # a Hugging Face dataset: a `save_to_disk` directory, or a hub name when online
    default = "default"  # the cached default corpus (see default_corpus.py)


@dataclasses.dataclass
class SourceConfig(Config):
    """One input source of the corpus."""

    path: str = ""
    """A file, a directory (read recursively), a glob, or an HF dataset directory / hub name."""
    kind: SourceKind = SourceKind.auto
    """How to read it (``auto`` decides from suffixes)."""
    name: str = ""
    """The source's name in Documents, stats and the mixture (default: derived from path)."""
    text_field: str = "text"
    """JSONL / Parquet / HF field holding the text."""
    id_field: str = "id"
    """Field holding a document id, if present (else ``file:line`` is the id)."""
    weight: float | None = None
    """Mixture weight (None: the source's natural share of the clean bytes)."""
    hf_split: str = "train"
    """Split to read from an HF DatasetDict / hub dataset."""
    rows_per_part: int = 50_000
    """Rows of an HF dataset per resumable part."""

    def resolved_name(self) -> str:
        """The name, or one derived from the path; filename-safe (it names part files)."""
        if self.kind == SourceKind.default and not self.name:
            return "default"
        stem = self.name
        if not stem:
            # the last path component without glob characters: "data/web/*.jsonl" -> "web"
            fixed = [p for p in Path(self.path).parts if not any(c in p for c in "*?[")]
            stem = fixed[-1] if fixed else "source"
            for suffix in (".gz", ".zst", ".jsonl", ".json", ".parquet", ".txt"):
                stem = stem.removesuffix(suffix)
        return re.sub(r"[^\w.-]+", "_", stem).strip("._") or "source"


class ReadStats:
    """Documents read and records skipped per reason, with the first few examples."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def read(self, nbytes: int) -> None:
        self.counts["read.docs"] += 1
        self.counts["read.bytes"] += nbytes

    def skip(self, reason: str, where: str) -> None:
        self.counts[f"skipped.{reason}"] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(where)

    def merge(self, other: dict[str, Any]) -> None:
        """Add a dict made by ``as_dict`` (e.g. from a completed part's marker)."""
        self.counts.update(other.get("counts", {}))
        for reason, examples in other.get("examples", {}).items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(examples[: MAX_EXAMPLES - len(mine)])

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "examples": self.examples}


@dataclasses.dataclass
class Part:
    """A resumable unit of a source: a file or a slice of a dataset."""

    source: str  # source name
    key: str  # unique, filename-safe key of this part within the corpus
    label: str  # what to show the user (a path)
    read: Callable[[ReadStats], Iterator[Document]]


# ----------------------------------------------------------------------------- file listing


def expand_paths(path: str) -> list[Path]:
    """Files under ``path`` (a file, a directory read recursively, or a glob), sorted."""
    if not path:
        raise SourceError("source path is empty")
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    else:
        files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
    if not files:
        raise SourceError(f"{path}: no input files (missing path or glob matches nothing)")
    return files


def kind_of(path: Path) -> SourceKind:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return SourceKind.jsonl
    if name.endswith(".parquet"):
        return SourceKind.parquet
    if name.endswith(TEXT_SUFFIXES):
        return SourceKind.text
    raise SourceError(f"{path}: cannot tell the format from the suffix; set the source's kind")


def _is_hf_dir(path: str) -> bool:
    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in ("dataset_info.json", "dataset_dict.json",
                                                         "state.json"))


def list_parts(cfg: SourceConfig) -> list[Part]:
    """The parts of one source, in a fixed order (so part keys are stable across reruns)."""
    name = cfg.resolved_name()
    if cfg.kind == SourceKind.default:
        # default_corpus builds on this module; data.corpus.corpus_parts expands it first
        raise SourceError(f"source {name!r}: kind=default is expanded into the fetched corpus's "
                          "sources by scalinglab.data.corpus.corpus_parts, not read directly")
    if cfg.kind == SourceKind.hf or (cfg.kind == SourceKind.auto and _is_hf_dir(cfg.path)):
        return _hf_parts(cfg, name)
    files = expand_paths(cfg.path)
    if all(f.stat().st_size == 0 for f in files):
        raise SourceError(f"{cfg.path}: input is empty ({len(files)} empty file(s))")
    in_dir = Path(cfg.path).expanduser().is_dir()
    parts = []
    for i, f in enumerate(files):
        reader = _reader_for(f, cfg, in_dir)
        parts.append(Part(name, f"{name}-{i:05d}", str(f),
                          lambda stats, f=f, reader=reader: reader(f, cfg, stats)))
    return parts


def _reader_for(f: Path, cfg: SourceConfig, in_dir: bool):
    """The reader of one file: the source's kind, else its suffix. In a directory, text-like
    suffixes (``TEXT_LIKE_SUFFIXES``, or none at all, e.g. LICENSE) are read as text and
    counted; other files are skipped and counted rather than failing the whole source."""
    if cfg.kind != SourceKind.auto:
        return _FILE_READERS[cfg.kind]
    try:
        return _FILE_READERS[kind_of(f)]
    except SourceError:
        if not in_dir:
            raise
    suffix = f.suffix.lower()
    if suffix in TEXT_LIKE_SUFFIXES or not suffix:
        return _read_as_text
    return _skip_unknown


def _read_as_text(path: Path, cfg: SourceConfig, stats: ReadStats) -> Iterator[Document]:
    stats.counts[f"read.as_text.{path.suffix.lower() or '(none)'}"] += 1
    yield from read_text_file(path, cfg, stats)


def _skip_unknown(path: Path, cfg: SourceConfig, stats: ReadStats) -> Iterator[Document]:
    stats.skip(f"unknown_suffix.{path.suffix.lower()}", f"{path}:1")
    yield from ()


# ----------------------------------------------------------------------------- file readers


def read_text_file(path: Path, cfg: SourceConfig, stats: ReadStats) -> Iterator[Document]:
    """One document per text file. Lines that are not valid UTF-8 are left out and each is
    counted as ``bad_utf8`` with its ``file:line``, as a bad JSONL line is: a few bad bytes
    do not cost the whole file."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode_good_lines(data, path, stats)
    text = text.removeprefix("\ufeff")  # BOM
    if not text.strip():
        stats.skip("empty_text", f"{path}:1")
        return
    stats.read(len(data))
    yield Document(text=text, id=f"{cfg.resolved_name()}/{relative_name(path, cfg)}",
                   source=cfg.resolved_name(), metadata={"path": str(path)})


def _decode_good_lines(data: bytes, path: Path, stats: ReadStats) -> str:
    kept = []
    for lineno, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            kept.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            stats.skip("bad_utf8", f"{path}:{lineno}")
    return "".join(kept)


def relative_name(path: Path, cfg: SourceConfig) -> str:
    """``path`` relative to the source's directory (unique within the source), else its name."""
    root = Path(cfg.path).expanduser()
    if root.is_dir():
        return path.relative_to(root).as_posix()
    return path.name


def _open_binary(path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise SourceError(f"{path}: reading .zst needs `pip install zstandard` "
                              "(scalinglab[data])") from None
        raw = open(path, "rb")  # noqa: SIM115 - closed with the reader below
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(path, "rb")  # noqa: SIM115


def read_jsonl_file(path: Path, cfg: SourceConfig, stats: ReadStats) -> Iterator[Document]:
    """One document per JSON line; bad lines are skipped and counted with ``file:line``.

    A compressed file that is truncated or corrupt is read up to the damage; the rest of it is
    counted once as ``corrupt_file`` at the line where reading failed.
    """
    name = cfg.resolved_name()
    lineno = 0
    with _open_binary(path) as f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except (OSError, EOFError, ValueError):  # gzip / zstd damage
                stats.skip("corrupt_file", f"{path}:{lineno + 1}")
                return
            lineno += 1
            doc = _parse_json_line(raw, cfg, name, f"{path}:{lineno}", stats,
                                   f"{relative_name(path, cfg)}:{lineno}")
            if doc is not None:
                yield doc


def _parse_json_line(raw: bytes, cfg: SourceConfig, name: str, where: str,
                     stats: ReadStats, default_id: str) -> Document | None:
    if not raw.strip():
        return None  # blank lines (e.g. a trailing newline) carry no record
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        stats.skip("bad_utf8", where)
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        stats.skip("malformed_json", where)
        return None
    return _record_to_doc(record, cfg, name, where, stats, default_id)


def _record_to_doc(record: Any, cfg: SourceConfig, name: str, where: str,
                   stats: ReadStats, default_id: str) -> Document | None:
    """A Document from one JSON/Parquet/HF record, or None (skip counted) if it has no text.

    Its id is ``name/<id field>`` when the record has one, else ``name/default_id``.
    """
    if not isinstance(record, dict):
        stats.skip("not_an_object", where)
        return None
    text = record.get(cfg.text_field)
    if not isinstance(text, str):
        stats.skip(f"missing_field.{cfg.text_field}", where)
        return None
    if not text.strip():
        stats.skip("empty_text", where)
        return None
    rid = record.get(cfg.id_field)
    doc_id = f"{name}/{rid if rid is not None else default_id}"
    meta = {k: v for k, v in record.items()
            if k not in (cfg.text_field, cfg.id_field) and _is_plain(v)}
    stats.read(len(text.encode("utf-8")))
    return Document(text=text, id=doc_id, source=name, metadata=meta)


def _is_plain(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def read_parquet_file(path: Path, cfg: SourceConfig, stats: ReadStats) -> Iterator[Document]:
    """One document per row, streamed in record batches."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SourceError(f"{path}: reading Parquet needs `pip install pyarrow` "
                          "(scalinglab[data])") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise SourceError(f"{path}: not a readable Parquet file: {e}") from None
    if cfg.text_field not in pf.schema_arrow.names:
        raise SourceError(f"{path}: no column {cfg.text_field!r} (columns: "
                          f"{pf.schema_arrow.names}); set the source's text_field")
    name, row = cfg.resolved_name(), 0
    rel = relative_name(path, cfg)
    for batch in pf.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            doc = _record_to_doc(record, cfg, name, f"{path}:{row}", stats, f"{rel}:{row}")
            if doc is not None:
                yield doc


_FILE_READERS: dict[SourceKind, Callable[[Path, SourceConfig, ReadStats], Iterator[Document]]] = {
    SourceKind.text: read_text_file,
    SourceKind.jsonl: read_jsonl_file,
    SourceKind.parquet: read_parquet_file,
}


# ----------------------------------------------------------------------------- HF datasets


def load_hf_dataset(cfg: SourceConfig):
    """A local ``save_to_disk`` directory (``load_from_disk``) or a hub name (``load_dataset``).

    A DatasetDict is narrowed to ``cfg.hf_split``. Hub names need network access; offline
    they fail with a one-line error.
    """
    try:
        import datasets
    except ImportError:
        raise SourceError(f"{cfg.path}: HF datasets need `pip install datasets` "
                          "(scalinglab[data])") from None
    try:
        if os.path.isdir(cfg.path):
            ds = datasets.load_from_disk(cfg.path)
        else:
            ds = datasets.load_dataset(cfg.path, split=cfg.hf_split)
    except Exception as e:  # datasets raises many types (FileNotFound, ConnectionError, ...)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SourceError(f"{cfg.path}: cannot load HF dataset: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        if cfg.hf_split not in ds:
            raise SourceError(f"{cfg.path}: no split {cfg.hf_split!r} (has {list(ds)})")
        ds = ds[cfg.hf_split]
    if cfg.text_field not in ds.column_names:
        raise SourceError(f"{cfg.path}: no column {cfg.text_field!r} (columns: "
                          f"{ds.column_names}); set the source's text_field")
    return ds


def _hf_parts(cfg: SourceConfig, name: str) -> list[Part]:
    ds = load_hf_dataset(cfg)
    n = len(ds)
    if n == 0:
        raise SourceError(f"{cfg.path}: dataset split {cfg.hf_split!r} is empty")
    step = max(1, cfg.rows_per_part)
    parts = []
    for i, start in enumerate(range(0, n, step)):
        stop = min(n, start + step)
        parts.append(Part(name, f"{name}-{i:05d}", f"{cfg.path}[{start}:{stop}]",
                          lambda stats, a=start, b=stop: _read_hf_rows(ds, a, b, cfg, stats)))
    return parts


def _read_hf_rows(ds, start: int, stop: int, cfg: SourceConfig,
                  stats: ReadStats) -> Iterator[Document]:
    name = cfg.resolved_name()
    for row, record in enumerate(ds.select(range(start, stop)), start=start + 1):
        doc = _record_to_doc(record, cfg, name, f"{cfg.path}:{row}", stats, str(row))
        if doc is not None:
            yield doc


def read_source(cfg: SourceConfig, stats: ReadStats | None = None) -> Iterator[Document]:
    """All documents of one source (every part, in order). Convenience for scripts."""
    stats = stats if stats is not None else ReadStats()
    for part in list_parts(cfg):
        yield from part.read(stats)
