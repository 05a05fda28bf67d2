"""Readers: formats, counted skips with file:line examples, clear errors for missing input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.data.sources import ReadStats, SourceConfig, SourceError, list_parts, read_source
from tests.data.conftest import make_text, write_jsonl


def _read(cfg: SourceConfig) -> tuple[list, ReadStats]:
    stats = ReadStats()
    return list(read_source(cfg, stats)), stats


def test_jsonl_bad_lines_are_counted_with_examples(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"body": "hello world", "id": 1}],
                       raw_lines=[b"{not json", b'{"body": "caf\xff"}', b'{"other": 1}', b"",
                                  b'{"body": "second", "lang": "en"}'])
    docs, stats = _read(SourceConfig(path=str(path), text_field="body"))
    assert [d.text for d in docs] == ["hello world", "second"]
    assert docs[0].id == "a/1" and docs[1].metadata == {"lang": "en"}
    c = stats.counts
    assert c["skipped.malformed_json"] == 1 and c["skipped.bad_utf8"] == 1
    assert c["skipped.missing_field.body"] == 1 and c["read.docs"] == 2
    assert stats.examples["malformed_json"] == [f"{path}:2"]
    assert stats.examples["bad_utf8"] == [f"{path}:3"]
    assert stats.examples["missing_field.body"] == [f"{path}:4"]


def test_compressed_jsonl(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    records = b"".join(json.dumps({"text": make_text(i)}).encode() + b"\n" for i in range(3))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(records))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(records))
    docs, stats = _read(SourceConfig(path=str(tmp_path / "*.jsonl.*")))
    assert len(docs) == 6 and docs[0].text == docs[3].text == make_text(0)
    assert len(list_parts(SourceConfig(path=str(tmp_path)))) == 2


def test_text_directory_and_bad_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "one.txt").write_text("\ufeffFirst document.")
    (tmp_path / "d" / "sub" / "two.txt").write_text("Second document.")
    (tmp_path / "d" / "bad.txt").write_bytes(b"line one\nline \xfe two\n")
    docs, stats = _read(SourceConfig(path=str(tmp_path / "d"), name="books"))
    # the bad line is left out and counted, as a bad JSONL line is; the rest of the file stays
    assert sorted(d.text for d in docs) == ["First document.", "Second document.", "line one\n"]
    assert {d.source for d in docs} == {"books"}
    assert sorted(d.id for d in docs) == ["books/bad.txt", "books/one.txt", "books/sub/two.txt"]
    assert stats.examples["bad_utf8"] == [f"{tmp_path / 'd' / 'bad.txt'}:2"]
    assert stats.counts["skipped.bad_utf8"] == 1


def test_text_like_suffixes_in_a_directory_are_text_and_counted(tmp_path: Path) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.rst").write_text("Title\n=====\n\nSome prose.")
    (d / "b.py").write_text("print('hi')\n")
    (d / "LICENSE").write_text("Permission is granted.")
    (d / "logo.png").write_bytes(b"\x89PNG\r\n")
    docs, stats = _read(SourceConfig(path=str(d)))
    assert sorted(d.id for d in docs) == ["docs/LICENSE", "docs/a.rst", "docs/b.py"]
    assert stats.counts["read.as_text..rst"] == 1 and stats.counts["read.as_text..py"] == 1
    assert stats.examples["unknown_suffix..png"] == [f"{d / 'logo.png'}:1"]
    # a single file of unknown suffix still needs its kind, which --source NAME=PATH:KIND sets
    with pytest.raises(SourceError, match="set the source's kind"):
        list_parts(SourceConfig(path=str(d / "a.rst")))
    docs, _ = _read(SourceConfig(path=str(d / "logo.png"), kind="text"))
    assert docs == []


def test_parquet_rows_and_nulls(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"content": ["alpha text", None, "gamma text"], "id": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "x.parquet")
    docs, stats = _read(SourceConfig(path=str(tmp_path / "x.parquet"), text_field="content"))
    assert [d.id for d in docs] == ["x/a", "x/c"]
    assert stats.examples["missing_field.content"] == [f"{tmp_path / 'x.parquet'}:2"]
    with pytest.raises(SourceError, match="no column 'text'"):
        _read(SourceConfig(path=str(tmp_path / "x.parquet")))


def test_hf_load_from_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": [make_text(i) for i in range(5)] + [""],
                                     "id": [str(i) for i in range(6)]})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hf"))
    cfg = SourceConfig(path=str(tmp_path / "hf"), rows_per_part=4)  # kind auto-detected
    assert len(list_parts(cfg)) == 2
    docs, stats = _read(cfg)
    assert [d.id for d in docs] == [f"hf/{i}" for i in range(5)]
    assert stats.counts["skipped.empty_text"] == 1
    with pytest.raises(SourceError, match="no split 'test'"):
        list_parts(SourceConfig(path=str(tmp_path / "hf"), kind="hf", hf_split="test"))


def test_missing_and_empty_inputs_are_one_line_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SourceError, match="no input files"):
        list_parts(SourceConfig(path=str(tmp_path / "nope" / "*.jsonl")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SourceError, match="input is empty"):
        list_parts(SourceConfig(path=str(tmp_path / "empty.jsonl")))
    code = main(["data", "prepare", "--source", str(tmp_path / "missing.jsonl"),
                 "--out", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "missing.jsonl" in err
    assert len(err.splitlines()) == 1


def test_cli_source_specs() -> None:
    from scalinglab.cli.data import _source

    assert _source("default").kind == "default"
    assert (_source("web=data/*.jsonl").name, _source("web=data/*.jsonl").path) == \
        ("web", "data/*.jsonl")
    hub = _source("stories=hf:roneneldan/TinyStories")
    assert (hub.kind, hub.path, hub.name) == ("hf", "roneneldan/TinyStories", "stories")
    assert _source("a/b=c.txt").path == "a/b=c.txt"  # '=' inside a path is not a name
    rst = _source("docs=manual/:text")
    assert (rst.name, rst.path, rst.kind) == ("docs", "manual/", "text")
    assert _source("x.rst:jsonl").kind == "jsonl"
    assert (_source("a:b").path, _source("a:b").kind) == ("a:b", "auto")  # not a kind


def test_truncated_gzip_is_counted_not_fatal(tmp_path: Path) -> None:
    records = b"".join(json.dumps({"text": make_text(i % 12) * 20}).encode() + b"\n"
                       for i in range(200))
    data = gzip.compress(records)
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    docs, stats = _read(SourceConfig(path=str(tmp_path / "cut.jsonl.gz")))
    assert 0 < len(docs) < 200 and stats.counts["skipped.corrupt_file"] == 1
    assert stats.examples["corrupt_file"][0].startswith(str(tmp_path / "cut.jsonl.gz"))


def test_source_names_and_unique_ids(tmp_path: Path) -> None:
    assert SourceConfig(path="data/web/*.jsonl.zst").resolved_name() == "web"
    assert SourceConfig(path="/x/books.jsonl.gz").resolved_name() == "books"
    assert SourceConfig(path="x", name="my web/crawl").resolved_name() == "my_web_crawl"
    assert SourceConfig(path="roneneldan/TinyStories", kind="hf").resolved_name() == "TinyStories"
    for sub in ("a", "b"):  # same file name in two directories, records without ids
        write_jsonl(tmp_path / "src" / sub / "part.jsonl", [{"text": "x"}, {"text": "y"}])
    docs, _ = _read(SourceConfig(path=str(tmp_path / "src")))
    assert [d.id for d in docs] == ["src/a/part.jsonl:1", "src/a/part.jsonl:2",
                                    "src/b/part.jsonl:1", "src/b/part.jsonl:2"]


def test_prepare_prints_per_source_kept_dropped_and_warns(tmp_path: Path, capsys) -> None:
    prose, code = tmp_path / "prose", tmp_path / "code"
    prose.mkdir(), code.mkdir()
    for i in range(6):
        (prose / f"p{i}.rst").write_text(make_text(i))
        (code / f"m{i}.py").write_text("x = 1\n" * 30 + f"y = {i}\n")  # not prose: filtered
    (prose / "bad.txt").write_bytes(make_text(99).encode() + b"\n\xff\xfe broken line\n")
    args = ["data", "prepare", "--source", f"docs={prose}", "--source", f"code={code}:text",
            "--out", str(tmp_path / "c"), "--quiet", "dedup.near=false", "ngram_index=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines()
            if line.startswith("  ") and line.split()[0] in ("docs", "code")
            and line.split()[1].isdigit()}
    assert rows["docs"] == ["7", "7", "0"]
    assert rows["code"][0] == "6" and rows["code"][1] == "0"
    assert "files read as text by suffix: .rst 6" in out
    bad_line = make_text(99).count("\n") + 2  # the line after the text and its newline
    assert f"docs: skipped 1 bad_utf8 (first at {prose / 'bad.txt'}:{bad_line})" in out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'code'" in warnings[0]
    assert "quality.enabled=false repetition.enabled=false" in warnings[0]
