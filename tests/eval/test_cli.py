"""``scalinglab eval`` end to end on an exported byte-level run: results.json, clean/dirty."""

from __future__ import annotations

import json

import pytest

from scalinglab.cli import main
from scalinglab.eval.runner import evaluate
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tasks import resolve_task
from scalinglab.eval.tokenizer import ByteTokenizer
from scalinglab.train.checkpoint import load_model
from tests.eval import data


def test_cli_writes_results_beside_the_run(byte_run, tmp_path, capsys):
    heldout = data.write_jsonl(tmp_path / "val_docs.jsonl", data.val_docs())
    piqa = data.write_jsonl(tmp_path / "piqa.jsonl", data.PIQA)
    tasks = f"heldout_bpb,heldout_cloze,heldout_continuation,piqa={piqa}"
    rc = main(["eval", str(byte_run), "--tasks", tasks, "--shots", "0,1",
               "--heldout", str(heldout), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((byte_run / "results.json").read_text())
    assert printed == results
    assert set(results["tasks"]) == {"heldout_bpb", "heldout_cloze", "heldout_continuation",
                                     "piqa"}
    bpb = results["tasks"]["heldout_bpb"]["shots"]["0"]
    assert results["bits_per_byte"] == bpb["bits_per_byte"] > 0
    assert set(bpb["by_source"]) == {"web", "books"} and bpb["n"] == 12
    for name in ("heldout_continuation", "piqa"):
        for k in ("0", "1"):
            m = results["tasks"][name]["shots"][k]
            assert 0 <= m["acc"] <= 1 and 0 <= m["acc_norm"] <= 1 and m["n"] > 0
    assert results["tasks"]["heldout_cloze"]["shots"]["1"]["perplexity"] > 1
    # Byte prompts of 24 words do not fit a 64-token context; PIQA's short ones do.
    cont = results["tasks"]["heldout_continuation"]["shots"]["1"]
    assert cont["truncated"] == cont["n"]
    assert results["tasks"]["piqa"]["shots"]["0"]["truncated"] == 0
    assert results["tasks"]["piqa"]["fewshot_pool"] == 2  # the other PIQA examples
    assert results["tasks"]["heldout_continuation"]["fewshot_pool"] > 0


def test_cli_errors_are_one_line(byte_run, tmp_path, capsys):
    assert main(["eval", str(byte_run), "--tasks", "piqa"]) == 2
    assert "no data file" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope"), "--tasks", "piqa"]) == 2
    assert main(["eval", str(byte_run), "--tasks", "heldout_bpb", "--shots", "x"]) == 2


def test_sliding_windows_from_the_task_file(byte_run, tmp_path):
    data.write_jsonl(tmp_path / "docs.jsonl", data.val_docs(n=3, words=40))
    scorer = Scorer(load_model(byte_run), ByteTokenizer())
    bpb = {}
    for context_len in (1, 32):
        (tmp_path / "t.yaml").write_text(f"name: bpb\ntype: rolling\nformat: text\n"
                                         f"data: docs.jsonl\ncontext_len: {context_len}\n")
        task = resolve_task(str(tmp_path / "t.yaml"))
        res = evaluate(scorer, [task], [0, 5])["tasks"]["bpb"]["shots"]
        assert list(res) == ["0"]  # no prompt, so no shots
        bpb[context_len] = res["0"]["bits_per_byte"]
    assert bpb[1] != bpb[32] and min(bpb.values()) > 0


def test_generation_task_exact_match(byte_run, tmp_path):
    scorer = Scorer(load_model(byte_run), ByteTokenizer())
    prompts = ["abc", "Hello", "The "]
    produced = [scorer.generate(p, ["\n"], 6) for p in prompts]
    records = [{"context": p, "target": t} for p, t in zip(prompts, produced, strict=True)]
    records[2]["target"] = produced[2] + "no"  # one the model does not produce
    path = data.write_jsonl(tmp_path / "gen.jsonl", records)
    (tmp_path / "gen.yaml").write_text("name: gen\ntype: generate\nformat: cloze\n"
                                       "template: '{context}'\ntarget_delimiter: ''\n"
                                       f"data: {path}\nmax_new_tokens: 6\n")
    res = evaluate(scorer, [resolve_task(str(tmp_path / "gen.yaml"))], [0])
    assert res["tasks"]["gen"]["shots"]["0"] == {"exact_match": pytest.approx(2 / 3), "n": 3,
                                                   "truncated": 0}


def test_results_accumulate_and_unchanged_entries_are_reused(tmp_path):
    from scalinglab.eval.api import evaluate_run
    from scalinglab.train.checkpoint import export_model
    from tests.eval.conftest import byte_model

    run = tmp_path / "run"
    model = byte_model()
    export_model(run, model, model.config)
    piqa = data.write_jsonl(tmp_path / "piqa.jsonl", data.PIQA)
    arc = data.write_jsonl(tmp_path / "arc.jsonl", data.ARC)
    evaluate_run(run, [f"piqa={piqa}"], [0], progress=False)
    results = json.loads((run / "results.json").read_text())
    results["tasks"]["piqa"]["shots"]["0"]["acc"] = "kept"  # a marker: reused, not rescored
    (run / "results.json").write_text(json.dumps(results))
    results, _ = evaluate_run(run, [f"piqa={piqa}", f"arc={arc}"], [0, 1], progress=False)
    assert results["tasks"]["piqa"]["shots"]["0"]["acc"] == "kept"
    assert set(results["tasks"]["piqa"]["shots"]) == {"0", "1"} and "arc" in results["tasks"]
    data.write_jsonl(piqa, data.PIQA[:2])  # changed data: that task is scored again
    results, _ = evaluate_run(run, [f"piqa={piqa}"], [0], progress=False)
    assert results["tasks"]["piqa"]["shots"]["0"]["n"] == 2 and "arc" in results["tasks"]
    export_model(run, byte_model(seed=1), model.config)  # new weights: nothing is reused
    results, _ = evaluate_run(run, [f"arc={arc}"], [0], progress=False)
    assert set(results["tasks"]) == {"arc"}


def test_cli_evaluates_several_runs(byte_run, tmp_path):
    """`scalinglab eval STUDY/runs/*` writes each run's own results.json."""
    import shutil

    second = tmp_path / "second_run"
    shutil.copytree(byte_run, second)
    (second / "results.json").unlink(missing_ok=True)
    heldout = data.write_jsonl(tmp_path / "val_docs.jsonl", data.val_docs())
    assert main(["eval", str(byte_run), str(second), "--tasks", "heldout_bpb",
                 "--heldout", str(heldout)]) == 0
    first_bpb, second_bpb = (
        json.loads((run / "results.json").read_text())["tasks"]["heldout_bpb"]["shots"]["0"]
        for run in (byte_run, second))
    assert first_bpb["bits_per_byte"] == second_bpb["bits_per_byte"] > 0
    assert main(["eval", str(byte_run), str(second), "--tasks", "heldout_bpb",
                 "--out", str(tmp_path / "r.json")]) == 2


def test_truncated_prompts_in_the_table_and_one_warning(byte_run, tmp_path, capsys):
    """The byte model's context is 64 tokens: 1-shot continuation prompts of 24 words must be
    cut (every one), 0-shot PIQA prompts must not."""
    heldout = data.write_jsonl(tmp_path / "val_docs.jsonl", data.val_docs())
    piqa = data.write_jsonl(tmp_path / "piqa.jsonl", data.PIQA)
    assert main(["eval", str(byte_run), "--tasks", f"heldout_continuation,piqa={piqa}",
                 "--shots", "0,1", "--heldout", str(heldout)]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    cols = lines[0].split()
    assert cols[:4] == ["task", "shots", "n", "truncated"]
    rows = [dict(zip(cols, line.split(), strict=True)) for line in lines[2:]
            if line.split()[0] in ("heldout_continuation", "piqa")]
    got = {(r["task"], r["shots"]): (r["n"], r["truncated"]) for r in rows}
    n, cut = got["heldout_continuation", "1"]
    assert cut == n and int(n) > 0
    assert got["piqa", "0"][1] == "0"
    warnings = [x for x in cap.err.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1
    assert f"heldout_continuation 1-shot {n} of {n}" in warnings[0]
    assert "context of 64 tokens" in warnings[0] and "piqa 0-shot" not in warnings[0]
    results = json.loads((byte_run / "results.json").read_text())
    assert results["context"] == 64


def test_no_warning_when_every_prompt_fits(byte_run, tmp_path, capsys):
    piqa = data.write_jsonl(tmp_path / "piqa.jsonl", data.PIQA)
    assert main(["eval", str(byte_run), "--tasks", f"piqa={piqa}", "--shots", "0",
                 "--out", str(tmp_path / "r.json")]) == 0
    cap = capsys.readouterr()
    assert "warning" not in cap.err
    assert json.loads((tmp_path / "r.json").read_text())["tasks"]["piqa"]["shots"]["0"][
        "truncated"] == 0


def test_generation_counts_cut_prompts(byte_run):
    scorer = Scorer(load_model(byte_run), ByteTokenizer())
    scorer.generate("x" * 10, ["\n"], 2)
    assert scorer.truncated == 0
    scorer.generate("x" * 200, ["\n"], 2)  # 200 bytes > the 64-token context
    assert scorer.truncated == 1
