"""``prepare executor=local|slurm|ray``: the sharded datatrove stages give the in-process corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.data.distributed import FinishStage, build_stages
from scalinglab.data.executors import TaskFailed
from scalinglab.data.pipeline import PrepareConfig, prepare
from scalinglab.data.sources import SourceConfig
from scalinglab.data.tokenize import corpus_files

pytest.importorskip("datatrove")


def _sample(tmp_path: Path, every: int = 24) -> tuple[list[SourceConfig], str]:
    """Every ``every``-th document of the default corpus in 4 files per source, plus an exact
    and a near copy placed in a later file than their original, and an evaluation set that
    leaks a passage of one document."""
    from scalinglab.data.default_corpus import fetch_default_corpus

    corpus = fetch_default_corpus(quiet=True)
    rows = [json.loads(line) for f in corpus.files() for line in open(f)][::every]
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append({"text": r["text"], "id": r["id"]})
    web = by_source.pop(sorted(by_source)[0])
    base = max(web[:20], key=lambda x: len(x["text"]))["text"]  # a long one passes the filters
    words = base.split()
    web.append({"text": base.replace(" ", "  "), "id": "exact-copy"})
    web.append({"text": " ".join(words[:40] + ["changed"] + words[41:]), "id": "near-copy"})
    sources = []
    for name, docs in [("web", web), *sorted(by_source.items())]:
        d = tmp_path / "src" / name
        d.mkdir(parents=True)
        for k in range(4):
            (d / f"{k}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs[k::4])
                                          + ("{not json\n" if k == 2 else ""))
        sources.append(SourceConfig(path=str(d), name=name))
    leak = " ".join(words[60:90])
    (tmp_path / "quiz.jsonl").write_text(json.dumps({"question": leak}) + "\n")
    return sources, str(tmp_path / "quiz.jsonl")


def _prepare(tmp_path: Path, sources, name: str, **kw) -> dict:
    cfg = PrepareConfig(sources=sources, out=str(tmp_path / name), progress=False)
    return prepare(cfg.merge(kw))


def _same_corpus(a: Path, b: Path, sa: dict, sb: dict) -> None:
    docs = sorted(p.name for p in a.glob("documents-*.jsonl"))
    assert docs and docs == sorted(p.name for p in b.glob("documents-*.jsonl"))
    for name in docs:  # same documents (ids, text, metadata), in the same order
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for key in ("sources", "steps", "clean", "mixture", "output", "decontamination"):
        assert sa.get(key) == sb.get(key), key


def test_local_tasks_give_the_inprocess_corpus(tmp_path: Path) -> None:
    sources, quiz = _sample(tmp_path)
    kw = {"decontam": {"eval_sets": [quiz]}}
    ref = _prepare(tmp_path, sources, "inprocess", **kw)
    steps = {s["name"]: s for s in ref["steps"]}
    assert steps["exact_dedup"]["dropped"]["exact_duplicate"]["docs"] >= 1  # the sample
    assert steps["minhash_dedup"]["dropped"]["near_duplicate"]["docs"] >= 1  # exercises every
    assert steps["decontaminate"]["counts"]["contaminated.docs"] >= 1  # step and a skip
    assert ref["sources"]["web"]["counts"]["skipped.malformed_json"] == 1
    got = _prepare(tmp_path, sources, "local", executor="local", tasks=4, workers=1, **kw)
    _same_corpus(tmp_path / "inprocess", tmp_path / "local", ref, got)
    assert got["executor"] == {"kind": "local", "tasks": 4, "workers": 1}
    assert len(list((tmp_path / "local" / "tasks" / "filter" / "completions").iterdir())) == 4


@pytest.mark.slow
def test_local_worker_processes_give_the_inprocess_corpus(tmp_path: Path) -> None:
    sources, _ = _sample(tmp_path, every=30)
    ref = _prepare(tmp_path, sources, "inprocess")
    got = _prepare(tmp_path, sources, "local", executor="local", tasks=3, workers=2)
    _same_corpus(tmp_path / "inprocess", tmp_path / "local", ref, got)


def _chain() -> tuple[list[str], float]:
    """Three texts A, C, B (in that input order) where B is a near copy of both A and C but A
    and C are not near copies of each other, and the verification threshold that says so.
    The preconditions are checked on the raw signatures, not with the code under test."""
    from scalinglab.data.steps.dedup import MinHasher

    words = [f"w{i}" for i in range(400)]
    a, b, c = (" ".join(words[k : k + 300]) for k in (0, 30, 60))
    sig = MinHasher(120, 5, 1)
    s = sig.signatures([sig.shingles(t) for t in (a, b, c)])
    est = {(i, j): (s[i] == s[j]).mean() for i, j in ((0, 1), (1, 2), (0, 2))}
    threshold = 0.78
    assert est[0, 1] >= threshold and est[1, 2] >= threshold > est[0, 2], est
    bands = [s[:, k * 6 : (k + 1) * 6] for k in range(20)]  # b=20 x r=6 (the default)
    assert any((x[0] == x[1]).all() for x in bands)  # A, B share a bucket (A is its first)
    # and in some band B, C share one without A, so C is that bucket's first: edge B-C
    assert any((x[1] == x[2]).all() and not (x[0] == x[1]).all() for x in bands)
    return [a, c, b], threshold


@pytest.mark.parametrize("executor,tasks", [("inprocess", 1), ("local", 1), ("local", 3)])
def test_minhash_clusters_are_corpus_wide_and_keep_the_first(tmp_path: Path, executor,
                                                            tasks) -> None:
    """The rule, for any executor and tasks: the clusters are the connected components of
    the verified LSH pairs over the whole corpus, and each keeps its first document in input
    order (source, file, line), whichever task read it. Here B (a later file) links A and C
    (one file, A first): all three are one cluster, so C and B go, though C came before B
    (a rule that only looked at earlier kept documents would keep C)."""
    (a, c, b), threshold = _chain()
    d = tmp_path / "src"
    d.mkdir()
    (d / "1.jsonl").write_text(json.dumps({"text": "alone " * 50 + "here"}) + "\n"
                               + json.dumps({"text": a}) + "\n" + json.dumps({"text": c}) + "\n")
    (d / "2.jsonl").write_text(json.dumps({"text": b}) + "\n")
    stats = _prepare(tmp_path, [SourceConfig(path=str(d), name="web")], "c", executor=executor,
                     tasks=tasks, workers=1, ngram_index=False, quality={"enabled": False},
                     repetition={"enabled": False},
                     dedup={"minhash": {"verify_threshold": threshold}})
    ids = [json.loads(x)["id"] for x in (tmp_path / "c" / "documents-00000.jsonl")
           .read_text().splitlines()]
    assert sorted(ids) == ["web/1.jsonl:1", "web/1.jsonl:2"]  # "alone" and A
    near = {s["name"]: s for s in stats["steps"]}["minhash_dedup"]["dropped"]["near_duplicate"]
    assert near["docs"] == 2


def test_failed_task_names_its_log_and_the_rerun_resumes(tmp_path: Path, monkeypatch) -> None:
    sources, _ = _sample(tmp_path, every=40)
    ref = _prepare(tmp_path, sources, "inprocess")
    original = FinishStage.part

    def broken(self, cfg, out, part):
        if part.key == "web-00002":
            raise RuntimeError("disk on fire")
        return original(self, cfg, out, part)

    monkeypatch.setattr(FinishStage, "part", broken)
    with pytest.raises(TaskFailed, match=r"stage finish: [12]/4 task\(s\) unfinished \(.*disk on "
                       r"fire\); log: .*tasks/finish/logs/task_00002.log"):
        _prepare(tmp_path, sources, "local", executor="local", tasks=4, workers=1)
    out = tmp_path / "local"
    with pytest.raises(Exception, match="not a complete prepared corpus"):
        corpus_files(out)  # tokenize refuses the unfinished corpus
    filtered = {p: p.stat().st_mtime_ns for p in (out / "work" / "filter").glob("*.json")}
    monkeypatch.setattr(FinishStage, "part", original)
    got = _prepare(tmp_path, sources, "local", executor="local", tasks=4, workers=1)
    _same_corpus(tmp_path / "inprocess", out, ref, got)
    assert {p: p.stat().st_mtime_ns for p in filtered} == filtered  # stage 1 was not redone


def test_cli_failed_task_is_one_line(tmp_path: Path, capfd, monkeypatch) -> None:
    """datatrove's own console logs go to tasks/{stage}/driver.log; the user sees one line."""
    sources, _ = _sample(tmp_path, every=60)
    monkeypatch.setattr(FinishStage, "part", lambda *a: 1 / 0)
    rc = main(["data", "prepare", "--source", f"web={sources[0].path}", "--out",
               str(tmp_path / "c"), "--quiet", "executor=local", "tasks=2", "workers=1"])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "task_0000" in err[0] and "division" in err[0], err
    assert "ZeroDivisionError" in (tmp_path / "c" / "tasks" / "finish" / "driver.log").read_text()


def test_slurm_jobs_are_built_and_their_tasks_run(tmp_path: Path, monkeypatch) -> None:
    """Without a cluster: datatrove's sbatch scripts are captured instead of submitted, then
    each array task is run as Slurm would (SLURM_ARRAY_TASK_ID, the pickled executor)."""
    import datatrove.executor.slurm as dt_slurm
    import dill

    sources, _ = _sample(tmp_path, every=40)
    ref = _prepare(tmp_path, sources, "inprocess")
    scripts: list[tuple[str, tuple]] = []

    def fake_sbatch(contents, job_id_retriever, *args):
        scripts.append((contents, args))
        return str(100 + len(scripts))

    monkeypatch.setattr(dt_slurm, "launch_slurm_job", fake_sbatch)
    launched = _prepare(tmp_path, sources, "slurm", executor="slurm", tasks=3,
                        slurm={"partition": "cpu", "time": "2:00:00", "cpus_per_task": 2})
    assert launched["launched"] == "slurm" and launched["stages"] == {
        "filter": 3, "buckets": 3, "clusters": 1, "finish": 3, "mixture": 1}
    arrays = [s for s, _ in scripts if "launch_pickled_pipeline" in s]
    assert len(arrays) == 5  # one array job per stage (the others merge datatrove's stats)
    assert "#SBATCH --array=0-2" in arrays[0] and "#SBATCH --partition=cpu" in arrays[0]
    assert "#SBATCH --cpus-per-task=2" in arrays[0] and "#SBATCH --time=2:00:00" in arrays[0]
    deps = [a for s, a in scripts if "launch_pickled_pipeline" in s]
    assert not any("--dependency" in x for x in deps[0])
    assert all(any(x.startswith("--dependency=afterok:") for x in d) for d in deps[1:])
    out = tmp_path / "slurm"
    assert not (out / "stats.json").exists()
    monkeypatch.setenv("SLURM_NODELIST", "localhost")
    monkeypatch.setattr(dt_slurm, "expand_slurm_nodelist", lambda s: [s])  # no scontrol here
    for stage, tasks in launched["stages"].items():
        for rank in range(tasks):
            monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(rank))
            with open(out / "tasks" / stage / "executor.pik", "rb") as f:
                dill.load(f).run()
    got = json.loads((out / "stats.json").read_text())
    _same_corpus(tmp_path / "inprocess", out, ref, got)


def test_ray_executors_are_built(tmp_path: Path) -> None:
    """Ray is not installed here: the executors are checked up to their run() call."""
    from datatrove.executor.ray import RayPipelineExecutor

    cfg = PrepareConfig(sources=[SourceConfig(path=str(tmp_path))], out=str(tmp_path / "c"))
    cfg = cfg.merge(["executor=ray", "tasks=8", "workers=4", "ray.cpus_per_task=2"])
    stages = build_stages(cfg, n_parts=5)
    assert [(s.name, t) for s, t, _ in stages] == [("filter", 5), ("buckets", 8), ("clusters", 1),
                                                    ("finish", 5),
                                                    ("mixture", 1)]
    for _, tasks, ex in stages:
        assert isinstance(ex, RayPipelineExecutor) and ex.tasks == tasks
        assert ex.cpus_per_task == 2 and ex.workers == min(4, tasks)


def test_slurm_without_partition_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    sources, _ = _sample(tmp_path, every=200)
    rc = main(["data", "prepare", "--source", f"web={sources[0].path}", "--out",
               str(tmp_path / "c"), "--quiet", "executor=slurm", "tasks=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "slurm.partition" in err[0]



@pytest.mark.slow
def test_killed_run_resumes_to_the_same_corpus(tmp_path: Path) -> None:
    """SIGKILL (scalinglab.io's fault hook) half-way through the streamed writes of a
    ``local tasks=3`` run: tokenize refuses the directory, the same command finishes it, and
    the corpus is the in-process one."""
    import os
    import subprocess
    import sys

    sources, _ = _sample(tmp_path, every=120)
    ref = _prepare(tmp_path, sources, "inprocess")
    src = str(Path(__file__).resolve().parents[2] / "src")

    def run(fault: str, out: str) -> subprocess.CompletedProcess:
        # NOTE: output to a file, not a pipe: datatrove's LocalPipelineExecutor forks a
        # multiprocess.Manager server, which outlives a SIGKILLed driver (holding a pipe open)
        args = [sys.executable, "-m", "scalinglab", "data", "prepare", "--quiet", "--out", out,
                *[x for s in sources for x in ("--source", f"{s.name}={s.path}")],
                "executor=local", "tasks=3", "workers=1"]
        env = {**os.environ, "PYTHONPATH": src, "SCALINGLAB_FAULT": fault}
        with open(tmp_path / "run.log", "w+") as log:
            done = subprocess.run(args, env=env, stdout=log, stderr=log, timeout=240)
            log.seek(0)
            done.stderr = log.read()
        return done

    log = tmp_path / "sites.log"
    assert run(f"log:{log}", str(tmp_path / "probe")).returncode == 0
    lines = [x for x in log.read_text().splitlines() if x.split(" ")[1] == "line"]
    out = tmp_path / "local"
    killed = run(f"line:{len(lines) // 2}", str(out))
    _kill_orphans(str(out))
    assert killed.returncode == -9, killed.stderr[-2000:]
    with pytest.raises(Exception, match="not a complete prepared corpus"):
        corpus_files(out)
    done = run("", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads((out / "stats.json").read_text())
    _same_corpus(tmp_path / "inprocess", out, ref, got)


def _kill_orphans(out: str) -> None:
    """SIGKILL the orphaned datatrove Manager servers this test's killed driver left (forks of
    it: same command line, naming ``out``; parent gone)."""
    import os
    import signal

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if out in cmd.split("\0") and ppid == "1":
            os.kill(int(pid), signal.SIGKILL)
