"""Bad input, one table: every CLI stage given a malformed file or an impossible config.

Each case builds its input under ``tmp_path`` and returns the argv; the CLI must exit with
status 2 and print exactly one stderr line ``error: ...`` that names the file (and the line or
field where there is one) -- never a traceback. ``fit --csv`` with NaN losses is the one case
that succeeds: the skipped rows are counted on screen instead of being dropped silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from tests.conftest import make_shards
from tests.data.conftest import make_text
from tests.scaling.conftest import TRUE_LAW, make_study

LATIN1 = "lr: 1e-3\n# caf\xe9 cr\xe8me\n".encode("latin-1")


def write(path: Path, content: str | bytes | object) -> Path:
    """Write text, bytes, or (anything else) JSON, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


def runs_csv(path: Path, losses: list[float] | None = None) -> Path:
    """A CSV of runs drawn from the true law; ``losses`` replaces the first losses."""
    rows = []
    for c in (1e18, 1e19, 1e20):
        n_opt, _ = TRUE_LAW.optimum(c)
        for n in n_opt * np.logspace(-0.6, 0.6, 5):
            rows.append({"params": n, "tokens": c / (6 * n),
                         "loss": float(TRUE_LAW.loss(n, c / (6 * n)))})
    for row, loss in zip(rows, losses or [], strict=False):
        row["loss"] = loss
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["params", "tokens", "loss"])
        w.writeheader()
        w.writerows(rows)
    return path


def planned_study(tmp: Path, edit: Callable[[dict], object]) -> Path:
    """A planned study (``sweep plan``) whose plan.json is replaced by ``edit(plan)``."""
    study = tmp / "study"
    assert main(["sweep", "plan", str(study), "--data", str(make_shards(tmp / "shards")),
                 "isoflop.budgets=[2e10]", "isoflop.sizes=3", "seq_len=32"]) == 0
    plan = study / "plan.json"
    write(plan, edit(json.loads(plan.read_text())))
    return study


def prepared_corpus(tmp: Path) -> list[str]:
    """``data prepare`` of a small JSONL source into ``tmp/corpus``; returns its argv."""
    src = write(tmp / "docs.jsonl", "".join(
        json.dumps({"text": make_text(i)}) + "\n" for i in range(20)))
    argv = ["data", "prepare", "--source", str(src), "--out", str(tmp / "corpus"), "--quiet",
            "--json", "workers=1"]
    assert main(argv) == 0
    return argv


def corpus_dir(tmp: Path) -> str:
    prepared_corpus(tmp)
    return str(tmp / "corpus")


def corpus_with_marker(tmp: Path, marker: object) -> list[str]:
    """A prepared corpus, unfinished again (no stats.json), with a hand-edited part marker."""
    argv = prepared_corpus(tmp)
    (tmp / "corpus" / "stats.json").unlink()
    (done,) = (tmp / "corpus" / "parts").glob("*.done.json")
    write(done, marker)
    return argv


def shards_with(tmp: Path, edit: Callable[[Path], None]) -> str:
    """Tiny shards with one file edited by ``edit(directory)``."""
    d = make_shards(tmp / "shards", train_tokens=2_000, val_tokens=500)
    edit(d)
    return str(d)


def header_edit(**fields) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        path = d / "train-00000.json"
        header = json.loads(path.read_text())
        header.update(fields)
        write(path, {k: v for k, v in header.items() if v is not None})
    return edit


def ckpt_run(tmp: Path, config: object, weights: bool = False) -> str:
    """A run directory with a checkpoint (of the default tiny model, else empty) and a
    hand-edited config.json."""
    import torch

    from scalinglab.model.config import ModelConfig
    from scalinglab.model.transformer import Transformer

    run = tmp / "run"
    write(run / "config.json", config)
    (run / "checkpoints").mkdir(parents=True)
    state = Transformer(ModelConfig(vocab_size=257)).state_dict() if weights else {}
    torch.save({"model": state}, run / "checkpoints" / "step-1.pt")
    return str(run / "checkpoints" / "step-1.pt")


def _exported(tmp: Path, config: object) -> str:
    """A run directory with a real exported model and a hand-edited config.json."""
    from scalinglab.model.config import ModelConfig
    from scalinglab.model.transformer import Transformer
    from scalinglab.train.checkpoint import export_model

    cfg = ModelConfig(vocab_size=257)
    export_model(tmp / "run", Transformer(cfg), cfg)
    write(tmp / "run" / "config.json", config)
    return str(tmp / "run")


def exported_run(tmp: Path) -> str:
    """A run directory whose model.safetensors is not a safetensors file."""
    from scalinglab.model.config import ModelConfig

    write(tmp / "run" / "model.safetensors", b"\x00" * 16)
    ModelConfig().to_json(tmp / "run" / "model_config.json")
    return str(tmp / "run")


def fits(tmp: Path, content: object) -> str:
    return str(write(tmp / "fits.json", content))


TRAIN = ["train", "--preset", "tiny", "--tokens", "1e4", "--dry-run"]

# (id, argv builder, substrings the error line must contain)
CASES: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    # ---- config files and overrides (config.py): train --dry-run does not train
    ("train-unknown-override", lambda t: [*TRAIN, "lerning_rate=1e-3"],
     ["lerning_rate", "did you mean `lr`?"]),
    ("train-unknown-nested-override", lambda t: [*TRAIN, "model.n_layer=2"],
     ["model.n_layer", "did you mean `model.n_layers`?"]),
    ("train-config-unknown-key", lambda t: [
        "train", "--config", str(write(t / "c.yaml", "lerning_rate: 0.1\n")), "--dry-run"],
     ["c.yaml", "lerning_rate", "did you mean `lr`?"]),
    ("train-config-nested-unknown-key", lambda t: [
        "train", "--config", str(write(t / "c.yaml", "model:\n  d_modle: 64\n")), "--dry-run"],
     ["c.yaml", "d_modle", "did you mean `d_model`?"]),
    ("train-config-latin1", lambda t: [
        "train", "--config", str(write(t / "c.yaml", LATIN1)), "--dry-run"],
     ["c.yaml", "UTF-8"]),
    ("train-config-empty", lambda t: [
        "train", "--config", str(write(t / "c.yaml", "")), "--dry-run"], ["c.yaml", "mapping"]),
    ("train-config-list", lambda t: [
        "train", "--config", str(write(t / "c.json", [1, 2])), "--dry-run"],
     ["c.json", "mapping"]),
    ("train-config-wrong-type", lambda t: [
        "train", "--config", str(write(t / "c.json", {"lr": "fast"})), "--dry-run"],
     ["c.json", "TrainConfig.lr", "'fast'"]),
    ("train-config-bad-yaml", lambda t: [
        "train", "--config", str(write(t / "c.yaml", "lr: [1,\n")), "--dry-run"], ["c.yaml"]),
    ("train-config-missing", lambda t: [
        "train", "--config", str(t / "nope.yaml"), "--dry-run"], ["nope.yaml"]),
    ("train-override-not-key-value", lambda t: [*TRAIN, "lr"], ["'lr'", "key=value"]),
    ("train-bad-enum", lambda t: [*TRAIN, "model.norm=batchnorm"],
     ["ModelConfig.norm", "batchnorm"]),
    ("train-heads-do-not-divide", lambda t: [*TRAIN, "model.d_model=64", "model.n_heads=3"],
     ["n_heads", "d_model"]),
    ("train-negative-tokens", lambda t: ["train", "--preset", "tiny", "--tokens", "-5",
                                         "--dry-run"], ["tokens"]),
    ("train-negative-lr", lambda t: [*TRAIN, "lr=-1"], ["lr"]),
    ("train-run-config-without-model", lambda t: [
        "train", "--preset", "tiny", "--tokens", "1e4", "--data", str(make_shards(t / "s")),
        "--out", str(write(t / "run" / "config.json", {"lr": 1e-3}).parent), "--quiet"],
     ["run/config.json", "'model'"]),
    ("train-unknown-preset", lambda t: ["train", "--preset", "tinyy", "--dry-run"],
     ["tinyy"]),
    # ---- token shards (data/shards.py)
    ("train-shard-size-mismatch", lambda t: [
        *TRAIN, "--data", shards_with(t, header_edit(num_tokens=999_999))],
     ["train-00000.bin", "999999"]),
    ("train-shard-header-lacks-field", lambda t: [
        *TRAIN, "--data", shards_with(t, header_edit(vocab_size=None))],
     ["train-00000.json", "vocab_size"]),
    ("train-shard-header-not-json", lambda t: [
        *TRAIN, "--data", shards_with(t, lambda d: write(d / "train-00000.json", "{"))],
     ["train-00000.json"]),
    ("train-shard-header-wrong-type", lambda t: [
        *TRAIN, "--data", shards_with(t, header_edit(vocab_size="big"))],
     ["train-00000.json", "vocab_size"]),
    ("train-shard-dir-missing", lambda t: [*TRAIN, "--data", str(t / "none")], ["none"]),
    # ---- data prepare / tokenize
    ("prepare-config-unknown-key", lambda t: [
        "data", "prepare", "--config", str(write(t / "p.yaml", "workerz: 2\n"))],
     ["p.yaml", "workerz", "did you mean `workers`?"]),
    ("prepare-marker-without-fields", lambda t: corpus_with_marker(t, {}),
     [".done.json", "label"]),
    ("prepare-marker-a-list", lambda t: corpus_with_marker(t, [1]), [".done.json"]),
    ("prepare-marker-torn", lambda t: corpus_with_marker(t, "{\"label\": "), [".done.json"]),
    ("tokenize-empty-tokenizer", lambda t: [
        "data", "tokenize", "--corpus", corpus_dir(t), "--tokenizer",
        str(write(t / "tok.json", "")), "--out", str(t / "shards")], ["tok.json"]),
    ("tokenize-not-a-corpus", lambda t: [
        "data", "tokenize", "--corpus", str(t / "nocorpus"), "--tokenizer", "x.json",
        "--out", str(t / "shards")], ["nocorpus"]),
    # ---- tokenizer
    ("tokenizer-compare-empty-file", lambda t: [
        "tokenizer", "compare", "--tokenizers", str(write(t / "tok.json", "")),
        "--text", str(write(t / "a.txt", "hello"))], ["tok.json"]),
    ("tokenizer-train-bad-jsonl", lambda t: [
        "tokenizer", "train", "--corpus", str(write(t / "c.jsonl", '{"text": "a"}\n{oops\n')),
        "--out", str(t / "tok.json"), "--quiet"], ["c.jsonl:2"]),
    ("tokenizer-train-latin1-text", lambda t: [
        "tokenizer", "train", "--corpus", str(write(t / "c.txt", LATIN1)),
        "--out", str(t / "tok.json"), "--quiet"], ["c.txt", "UTF-8"]),
    ("tokenizer-config-unknown-key", lambda t: [
        "tokenizer", "train", "--corpus", str(write(t / "c.txt", "hi")), "--out",
        str(t / "tok.json"), "--config", str(write(t / "t.yaml", "vocab_sise: 300\n"))],
     ["t.yaml", "vocab_sise", "did you mean `vocab_size`?"]),
    # ---- sweep
    ("sweep-plan-config-unknown-key", lambda t: [
        "sweep", "plan", str(t / "s"), "--config", str(write(t / "s.yaml", "dta: x\n"))],
     ["s.yaml", "dta", "did you mean `data`?"]),
    ("sweep-plan-negative-budget", lambda t: [
        "sweep", "plan", str(t / "s"), "--data", str(make_shards(t / "shards")),
        "isoflop.budgets=[-1e12]"], ["SweepConfig.isoflop.budgets", "-1e+12"]),
    ("sweep-status-other-version", lambda t: [
        "sweep", "status", str(planned_study(t, lambda p: {**p, "version": 99}))],
     ["plan.json", "version"]),
    ("sweep-status-plan-a-list", lambda t: [
        "sweep", "status", str(planned_study(t, lambda p: p["runs"]))], ["plan.json"]),
    ("sweep-status-run-lacks-fields", lambda t: [
        "sweep", "status", str(planned_study(t, lambda p: {**p, "runs": [{"run_id": "r"}]}))],
     ["plan.json", "runs[0]"]),
    ("sweep-run-train-without-model", lambda t: [
        "sweep", "run", str(planned_study(t, lambda p: {**p, "runs": [
            {**p["runs"][0], "train": {"lr": 1e-3}}]})), "--quiet"],
     ["plan.json", "runs[0].train", "'model'"]),
    ("sweep-run-plan-torn", lambda t: [
        "sweep", "run", str(planned_study(t, lambda p: '{"version": 1, "runs": [')),
        "--quiet"], ["plan.json"]),
    ("sweep-run-no-plan", lambda t: ["sweep", "run", str(t / "empty"), "--quiet"],
     ["empty", "sweep.json"]),
    # ---- OSError (here: a path through a regular file), caught last by the CLI's main
    ("sweep-plan-not-a-directory", lambda t: [
        "sweep", "plan", str(write(t / "afile", "x") / "study"), "--data",
        str(make_shards(t / "shards")), "isoflop.budgets=[2e10]", "seq_len=32",
        "width_multiple=4"],
     ["error: sweep plan: ", "afile/study", "Not a directory"]),
    ("prepare-not-a-directory", lambda t: [
        "data", "prepare", "--source", str(write(t / "d.jsonl", '{"text": "hi"}\n')), "--out",
        str(write(t / "afile", "x") / "corpus"), "--quiet"],
     ["error: data prepare: ", "afile/corpus", "Not a directory"]),
    # ---- fit / backtest (study.csv and --csv)
    ("fit-csv-nonpositive-loss", lambda t: [
        "fit", "--csv", str(runs_csv(t / "r.csv", [0.0])), "--bootstrap", "0"],
     ["r.csv:2", "loss"]),
    ("fit-csv-negative-params", lambda t: [
        "fit", "--csv", str(write(t / "r.csv", "params,tokens,loss\n-5,1e9,3.0\n")),
        "--bootstrap", "0"], ["r.csv:2", "params"]),
    ("fit-csv-empty", lambda t: ["fit", "--csv", str(write(t / "r.csv", "")),
                                 "--bootstrap", "0"], ["r.csv", "empty file"]),
    ("fit-csv-missing-column", lambda t: [
        "fit", "--csv", str(write(t / "r.csv", "params,loss\n1e6,3.0\n")), "--bootstrap", "0"],
     ["r.csv", "tokens"]),
    ("fit-csv-latin1", lambda t: [
        "fit", "--csv", str(write(t / "r.csv", b"params,tokens,loss\n1e6,1e9,3.0\n"
                                  + b"# \xe9\n")), "--bootstrap", "0"], ["r.csv", "UTF-8"]),
    ("fit-study-text-tokens", lambda t: [
        "fit", str(_edit_study(t, "tokens", "many")), "--bootstrap", "0"],
     ["study.csv:2", "tokens"]),
    ("fit-study-bad-metrics-line", lambda t: [
        "fit", str(_bad_metrics(t)), "--bootstrap", "0"], ["metrics.jsonl:1"]),
    ("backtest-csv-text-loss", lambda t: [
        "backtest", "--csv", str(write(t / "r.csv", "params,tokens,loss\n1e6,1e9,low\n"))],
     ["r.csv:2", "loss"]),
    # ---- fits.json readers: allocate, predict, plan run, report
    ("allocate-fits-a-list", lambda t: ["allocate", "--budget", "1e21", "--fits",
                                        fits(t, [1, 2])], ["fits.json", "list"]),
    ("allocate-fits-lacks-keys", lambda t: ["allocate", "--budget", "1e21", "--fits",
                                            fits(t, {})], ["fits.json"]),
    ("allocate-fits-wrong-types", lambda t: [
        "allocate", "--budget", "1e21", "--fits",
        fits(t, {"approach1": "x", "approach3": {"E": "1.7", "A": [], "B": None}})],
     ["fits.json", "approach"]),
    ("allocate-fits-empty", lambda t: ["allocate", "--budget", "1e21", "--fits",
                                       fits(t, "")], ["fits.json"]),
    ("allocate-negative-budget", lambda t: ["allocate", "--budget", "-1"], ["budget", "-1"]),
    ("predict-fits-lacks-keys", lambda t: [
        "predict", "--fits", fits(t, {"recommended": {"method": "approach3"}}),
        "--params", "1e9", "--tokens", "2e10"], ["fits.json", "approach3"]),
    ("predict-fits-method-wrong-type", lambda t: [
        "predict", "--fits", fits(t, {"approach3": [1.7, 400]}), "--params", "1e9",
        "--tokens", "2e10"], ["fits.json", "approach3"]),
    ("predict-csv-missing-params", lambda t: [
        "predict", "--fits", fits(t, {}), "--csv", str(write(t / "p.csv", "tokens\n1e9\n"))],
     ["p.csv", "params"]),
    ("plan-run-fits-a-list", lambda t: [
        "plan", "run", "--budget", "1e21", "--gpus", "8", "--fits", fits(t, [])],
     ["fits.json", "list"]),
    ("plan-run-fits-lacks-keys", lambda t: [
        "plan", "run", "--budget", "1e21", "--gpus", "8", "--fits", fits(t, {"n_runs": 3})],
     ["fits.json"]),
    ("plan-run-negative-budget", lambda t: ["plan", "run", "--budget", "-1", "--gpus", "8"],
     ["budget"]),
    ("plan-layout-heads-do-not-divide", lambda t: [
        "plan", "layout", "--model", "4/64/3", "--gpus", "8", "--batch", "8"],
     ["64", "3"]),
    ("plan-layout-unknown-override", lambda t: [
        "plan", "layout", "--model", "4/64/4", "--gpus", "8", "--batch", "8", "tpp=[2]"],
     ["tpp", "did you mean `tp`?"]),
    ("plan-memory-catalogue-latin1", lambda t: [
        "plan", "memory", "--model", "4/64/4", "--gpu", "a100-80gb", "--catalogue",
        str(write(t / "gpus.yaml", LATIN1))], ["gpus.yaml", "UTF-8"]),
    ("report-fits-a-list", lambda t: ["report", str(_study_with_fits(t, [1]))],
     ["fits.json"]),
    ("report-no-study", lambda t: ["report", str(t / "nostudy")], ["nostudy"]),
    # ---- eval / toxicity
    ("eval-config-without-model", lambda t: [
        "eval", ckpt_run(t, {"lr": 1e-3}), "--tasks", "heldout_bpb"], ["config.json", "model"]),
    ("eval-config-a-list", lambda t: [
        "eval", ckpt_run(t, [1]), "--tasks", "heldout_bpb"], ["config.json"]),
    ("eval-weights-do-not-fit", lambda t: [
        "eval", ckpt_run(t, {"model": {"n_layers": 3, "vocab_size": 257}}, weights=True), "--tasks",
        "heldout_bpb"], ["step-1.pt", "config.json", "layers.2"]),
    ("eval-safetensors-garbage", lambda t: [
        "eval", exported_run(t), "--tasks", "heldout_bpb"], ["model.safetensors"]),
    ("eval-run-config-a-list", lambda t: [
        "eval", _exported(t, config=[1]), "--tokenizer", "bytes", "--tasks", "heldout_bpb"],
     ["run/config.json", "list"]),
    ("eval-task-bad-jsonl", lambda t: [
        "eval", ckpt_run(t, {"model": {"vocab_size": 257}}, weights=True), "--tokenizer",
        "bytes", "--tasks", f"piqa={write(t / 'piqa.jsonl', '{oops')}"], ["piqa.jsonl:1"]),
    ("eval-bad-shots", lambda t: ["eval", str(t), "--tasks", "heldout_bpb", "--shots", "x"],
     ["--shots"]),
    ("toxicity-prompts-empty", lambda t: [
        "toxicity", str(t), "--prompts", str(write(t / "p.jsonl", ""))], ["p.jsonl"]),
    ("toxicity-prompts-latin1", lambda t: [
        "toxicity", str(t), "--prompts", str(write(t / "p.jsonl", LATIN1))], ["p.jsonl"]),
    # ---- demo config (validated before anything runs)
    ("demo-config-unknown-key", lambda t: [
        "demo", "--config", str(write(t / "d.yaml", "budget: [1e11]\n"))],
     ["d.yaml", "budget", "did you mean `budgets`?"]),
    ("demo-config-wrong-type", lambda t: [
        "demo", "--config", str(write(t / "d.json", {"budgets": "many"}))],
     ["d.json", "DemoConfig.budgets"]),
]


def _edit_study(tmp: Path, column: str, value: str) -> Path:
    study = make_study(tmp / "study", budgets=(1e18, 1e19), n_sizes=3, curve_points=3)
    path = study / "study.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    rows[0][column] = value
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return study


def _bad_metrics(tmp: Path) -> Path:
    study = make_study(tmp / "study", budgets=(1e18, 1e19), n_sizes=3, curve_points=3)
    (first,) = sorted((study / "runs").iterdir())[:1]
    write(first / "metrics.jsonl", "{oops\n")
    return study


def _study_with_fits(tmp: Path, content: object) -> Path:
    study = make_study(tmp / "study", budgets=(1e18, 1e19), n_sizes=3, curve_points=3)
    write(study / "fits.json", content)
    return study


def test_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("build", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(build, expect, tmp_path, capsys):
    argv = build(tmp_path)
    capsys.readouterr()  # what the setup printed
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip("\n").splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    line = lines[0].replace(str(tmp_path), "TMP")  # so that a needle cannot match the path
    for needle in expect:
        assert needle in line, f"{needle!r} not in {line!r}"


def test_nan_losses_are_counted_on_screen(tmp_path, capsys):
    path = runs_csv(tmp_path / "r.csv", [float("nan"), float("nan")])
    code = main(["fit", "--csv", str(path), "--bootstrap", "0", "--out",
                 str(tmp_path / "fits.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped: 2 non-finite loss" in out


def test_overrides_may_follow_an_option(tmp_path, capsys):
    """The documented ``sweep plan STUDY --data SHARDS key=value`` reaches the overrides."""
    shards = make_shards(tmp_path / "shards")
    assert main(["sweep", "plan", str(tmp_path / "s"), "--data", str(shards), "--json",
                 "isoflop.budgets=[2e10]", "seq_len=32", "width_multiple=4"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["budget"] == 2e10
