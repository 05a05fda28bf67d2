"""prepare: stats per step and reason, mixture output, resume after a crash, atomic outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.data import corpus, pipeline
from scalinglab.data.pipeline import PrepareConfig, prepare, read_jsonl_docs
from scalinglab.data.sources import SourceConfig
from scalinglab.data.steps.base import PipelineStep
from scalinglab.data.steps.dedup import DedupConfig
from scalinglab.data.steps.filters import QualityConfig, RepetitionConfig
from scalinglab.errors import ScalinglabError
from tests.data.conftest import make_text, write_jsonl


def _sources(tmp_path: Path) -> list[SourceConfig]:
    web = tmp_path / "web"
    for f in range(3):  # 3 files = 3 resumable parts
        recs = [{"text": make_text(10 * f + i), "id": f"{f}-{i}"} for i in range(10)]
        recs.append({"text": "too short", "id": f"{f}-short"})
        write_jsonl(web / f"part{f}.jsonl", recs, raw_lines=[b"{broken"])
    (tmp_path / "books").mkdir(exist_ok=True)
    for i in range(4):
        (tmp_path / "books" / f"b{i}.txt").write_text(make_text(100 + i))
    return [SourceConfig(path=str(web), name="web"), SourceConfig(path=str(tmp_path / "books"))]


def _cfg(tmp_path: Path, out: str = "corpus", **kw) -> PrepareConfig:
    # make_text documents reorder the same 12 sentences: near-duplicates that dedup would drop
    kw.setdefault("dedup", DedupConfig(exact=False, near=False))
    return PrepareConfig(sources=_sources(tmp_path), out=str(tmp_path / out), progress=False,
                         **kw)


def _output(out: Path) -> list[str]:
    return [d.id for f in sorted(out.glob("documents-*.jsonl")) for d in read_jsonl_docs(f)]


def test_prepare_writes_clean_corpus_and_stats(tmp_path: Path) -> None:
    stats = prepare(_cfg(tmp_path))
    out = tmp_path / "corpus"
    ids = _output(out)
    assert len(ids) == 34 and not any(i.endswith("short") for i in ids)
    assert json.loads((out / "stats.json").read_text()) == stats
    web = stats["sources"]["web"]
    assert web["counts"]["skipped.malformed_json"] == 3
    assert web["examples"]["malformed_json"][0].endswith("part0.jsonl:12")
    quality = stats["steps"][0]
    assert quality["name"] == "gopher_quality"
    assert quality["in"]["docs"] == 37 and quality["out"]["docs"] == 34
    assert quality["dropped"]["gopher_quality.too_few_words"] == {"docs": 3, "bytes": 27}
    assert quality["per_source"]["web"]["in"]["docs"] == 33
    assert quality["per_source"]["books"]["dropped"] == {}
    assert stats["mixture"]["books"]["epochs"] == pytest.approx(1.0)
    assert stats["output"]["documents"] == 34


def test_mixture_weights_resample_sources(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg.sources[0].weight, cfg.sources[1].weight = 1.0, 1.0
    stats = prepare(cfg)
    m = stats["mixture"]
    assert m["books"]["epochs"] == pytest.approx(m["books"]["target_bytes"]
                                                 / m["books"]["clean_bytes"])
    assert m["books"]["epochs"] > 2 and m["web"]["epochs"] < 1
    per = stats["output"]["per_source"]
    assert per["books.docs"] == round(4 * m["books"]["epochs"])


class _Crash(PipelineStep):
    """Fault injection: interrupts the run in the middle of one part."""

    name = "crash"

    def process(self, doc):
        if doc.id.startswith("web/1-5"):
            raise KeyboardInterrupt
        yield doc


class _Count(PipelineStep):
    name = "count"
    seen: list[str] = []

    def process(self, doc):
        _Count.seen.append(doc.id)
        yield doc


def test_killed_run_resumes_from_completed_parts(tmp_path: Path, monkeypatch) -> None:
    build = pipeline.build_steps
    monkeypatch.setattr(pipeline, "build_steps", lambda cfg: [*build(cfg), _Crash()])
    with pytest.raises(KeyboardInterrupt):
        prepare(_cfg(tmp_path))
    out = tmp_path / "corpus"
    assert (out / "parts" / "web-00000.done.json").exists()
    assert not (out / "parts" / "web-00001.jsonl").exists()  # no half-written output
    assert not (out / "stats.json").exists() and not list(out.glob("documents-*"))
    code = main(["data", "tokenize", "--corpus", str(out), "--tokenizer", "x.json",
                 "--out", str(tmp_path / "s")])
    assert code == 2  # a later stage refuses the unfinished corpus

    monkeypatch.setattr(pipeline, "build_steps", lambda cfg: [*build(cfg), _Count()])
    _Count.seen = []
    stats = prepare(_cfg(tmp_path))
    assert not any(i.startswith("web/0-") for i in _Count.seen)  # part 0 was not redone
    assert sorted(_output(out)) == sorted(_output_of_fresh_run(tmp_path, build, monkeypatch))
    assert stats["steps"][0]["in"]["docs"] == 37  # totals include the resumed part


def _output_of_fresh_run(tmp_path: Path, build, monkeypatch) -> list[str]:
    monkeypatch.setattr(pipeline, "build_steps", build)
    prepare(_cfg(tmp_path, out="fresh"))
    return _output(tmp_path / "fresh")


def test_resume_with_other_config_is_refused(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "config.json").write_text(json.dumps({"out": "elsewhere"}))
    with pytest.raises(ScalinglabError, match="another config"):
        prepare(cfg)


def test_cli_prepare_with_config_file_and_overrides(tmp_path: Path, capsys) -> None:
    cfg = _cfg(tmp_path)
    cfg_path = tmp_path / "data.yaml"
    cfg.to_json(cfg_path)
    code = main(["data", "prepare", "--config", str(cfg_path), "--quiet", "--json",
                 "--out", str(tmp_path / "c2"), "quality.min_words=100000"])
    stats = json.loads(capsys.readouterr().out)
    assert code == 0 and stats["output"]["documents"] == 0
    assert stats["steps"][0]["dropped"]["gopher_quality.too_few_words"]["docs"] == 37


def test_changed_inputs_are_refused_on_resume(tmp_path: Path) -> None:
    prepare(_cfg(tmp_path))
    (tmp_path / "corpus" / "stats.json").unlink()  # as if killed during the mixture
    write_jsonl(tmp_path / "web" / "part00.jsonl", [{"text": make_text(7)}])  # shifts parts
    with pytest.raises(ScalinglabError, match="inputs changed"):
        prepare(_cfg(tmp_path))


def test_default_source_weight_is_shared_by_its_sources() -> None:
    cfg = PrepareConfig(sources=[SourceConfig(kind="default", weight=0.5),
                                 SourceConfig(path="x.jsonl", name="web", weight=0.5)])
    clean = {"kjv": {"bytes": 100}, "milton": {"bytes": 300}, "web": {"bytes": 50}}
    assert corpus._weights(cfg, clean) == {"web": 0.5, "kjv": 0.125, "milton": 0.375}


def test_parallel_workers_give_the_same_corpus(tmp_path: Path) -> None:
    fast = {"quality": QualityConfig(word_splitter="regex"),  # workers need not import spaCy
            "repetition": RepetitionConfig(word_splitter="regex")}
    one = prepare(_cfg(tmp_path, out="one", **fast))
    two = prepare(_cfg(tmp_path, out="two", workers=2, **fast))
    assert _output(tmp_path / "one") == _output(tmp_path / "two")
    for key in ("sources", "steps", "clean", "mixture", "output"):
        assert one[key] == two[key]


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_the_same_corpus(tmp_path: Path) -> None:
    """A real `kill -9` of `scalinglab data prepare` after its first completed part."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "raw"
    for f in range(6):
        write_jsonl(src / f"f{f}.jsonl",
                    [{"text": make_text(1000 * f + i), "id": f"{f}-{i}"} for i in range(250)])
    args = [sys.executable, "-m", "scalinglab", "data", "prepare", "--source", str(src),
            "--quiet", "quality.word_splitter=regex", "repetition.word_splitter=regex"]
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).parents[2])}
    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out)], env=env)
    deadline = time.time() + 120
    while not list((out / "parts").glob("*.done.json")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list((out / "parts").glob("*.done.json"))
    assert 1 <= len(done) < 6 and not (out / "stats.json").exists()
    assert not list(out.glob("documents-*.jsonl"))  # nothing that looks complete
    for marker in done:  # every marked part has its full output
        assert (out / "parts" / marker.name.replace(".done.json", ".jsonl")).exists()
    subprocess.run([*args, "--out", str(out)], env=env, check=True)
    assert not list((out / "parts").glob(".*.tmp-*"))  # the killed write was cleaned up
    subprocess.run([*args, "--out", str(tmp_path / "fresh")], env=env, check=True)
    assert _output(out) == _output(tmp_path / "fresh")
    resumed = json.loads((out / "stats.json").read_text())
    assert resumed["steps"][0]["in"]["docs"] == 1500
