"""Planner -> trainer: one vocabulary. Every layout the planner ranks converts exactly into the
trainer's ``parallel`` config and back, its printed command passes ``scalinglab train
--dry-run`` as the same layout, and a layout that cannot run gets the same one line from both."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest
import yaml

from scalinglab.layout.config import ParallelConfig
from scalinglab.model.presets import tiny
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.launch import run_config, torchrun_command
from scalinglab.plan.layout import Layout, from_parallel, layout_errors, to_parallel
from scalinglab.plan.search import enumerate_layouts, search_layouts
from tests.conftest import make_shards

SMALL = dataclasses.replace(tiny(), n_layers=4, tie_embeddings=False)  # 4 untied layers
GPU = get_gpu("h100-80gb")
SEQ, BATCH = 64, 16


def top10():
    return [c.layout for c in search_layouts(SMALL, 8, GPU, BATCH, SEQ).feasible[:10]]


def test_every_valid_layout_converts_exactly_both_ways():
    layouts = list(enumerate_layouts(tiny(), 8, GPU, 32, seq_len=SEQ))
    assert len(layouts) > 50
    for layout in layouts:
        pcfg = to_parallel(layout)
        assert from_parallel(pcfg, 8, layout.global_batch, layout.micro_batch) == layout
        assert pcfg.dp * pcfg.fsdp * pcfg.tp * pcfg.pp == 8


@pytest.mark.parametrize("zero,expect", [
    (0, dict(dp=8, fsdp=1, shard_optimizer=False)),
    (1, dict(dp=8, fsdp=1, shard_optimizer=True)),
    (2, dict(dp=1, fsdp=8, reshard_after_forward=False)),
    (3, dict(dp=1, fsdp=8, reshard_after_forward=True)),
])
def test_zero_stages_map_to_the_trainers_engines(zero, expect):
    pcfg = to_parallel(Layout(dp=8, zero_stage=zero, global_batch=8, recompute="selective"))
    assert {k: getattr(pcfg, k) for k in expect} == expect
    assert pcfg.activation_checkpoint == "selective"


def _train_argv(command: str, shards, out) -> list[str]:
    words = shlex.split(command.replace("$DATA", str(shards)).replace("$OUT", str(out)))
    return words[words.index("train"):]


def test_top10_commands_pass_train_dry_run_as_the_same_layout(tmp_path, cli, monkeypatch):
    shards = make_shards(tmp_path / "shards", vocab_size=256)
    monkeypatch.setenv("WORLD_SIZE", "8")  # what torchrun would set
    layouts = top10()
    assert len(layouts) == 10
    for i, layout in enumerate(layouts):
        run = run_config(SMALL, layout, SEQ, preset="tiny", tokens=BATCH * SEQ * 3)
        argv = _train_argv(torchrun_command(run, GPU), shards, tmp_path / f"r{i}")
        rc, out, err = cli(*argv, "--dry-run")
        assert rc == 0, f"{layout.describe()}: {err}"
        got = json.loads(out)
        assert ParallelConfig.from_dict(got["config"]["parallel"]) == to_parallel(layout)
        assert got["config"]["model"] == run.model.as_dict()
        assert got["parallel"]["microbatches"] == layout.num_micro_batches
        assert got["plan"]["batch_seqs"] == BATCH and got["plan"]["seq_len"] == SEQ


def test_plan_layout_prints_command_and_writes_config(tmp_path, cli, cli_json):
    path, script = tmp_path / "run.yaml", tmp_path / "run.sbatch"
    rc, out, err = cli("plan", "layout", "--model", "mtnlg-530b", "--gpus", "2240", "--batch",
                       "1920", "--write-config", path, "--slurm", script, "--top", "3")
    assert rc == 0, err
    saved = yaml.safe_load(path.read_text())
    assert saved["parallel"]["tp"] == 8 and saved["parallel"]["pp"] > 1
    # Megatron's padding (50257 -> 51200 = 50 x 128 x 8), embeddings untied across stages.
    assert saved["model"]["vocab_size"] == 51200 and saved["model"]["tie_embeddings"] is False
    assert f"--config {path}" in out and "torchrun --nnodes=280 --nproc-per-node=8" in out
    assert f"--parallel dp={saved['parallel']['dp']},fsdp={saved['parallel']['fsdp']}" in out
    text = script.read_text()
    assert "#SBATCH --nodes=280" in text and "srun torchrun" in text
    data = cli_json("plan", "run", "--budget", "1e22", "--gpus", "64", "--gpu", "h100-80gb")
    assert "-m scalinglab train" in data["launch"]["command"]
    assert data["launch"]["config"]["parallel"] == to_parallel(
        Layout.from_dict(data["layout"]["layout"])).as_dict()


@pytest.mark.parametrize("layout,overrides,needle", [
    (Layout(pp=4, dp=2, micro_batch=2, global_batch=12),
     ["micro_batch_size=2"], "3 micro-batches per step is fewer than pp=4"),
    (Layout(tp=8, global_batch=8), [], "parallel.tp=8 does not divide model.n_heads=4"),
    (Layout(tp=2, pp=2, dp=2, zero_stage=1, micro_batch=1, global_batch=8),
     [], "ZeRO-1 (zero_stage=1, parallel.shard_optimizer) runs only under plain data"),
    (Layout(dp=3, global_batch=8), [], "dp x fsdp = 3 does not divide the batch of 8"),
])
def test_bad_layouts_get_the_same_words_from_plan_and_train(tmp_path, cli, monkeypatch,
                                                            layout, overrides, needle):
    errs = layout_errors(layout, SMALL, GPU, seq_len=SEQ)
    assert errs and needle in errs[0]
    shards = make_shards(tmp_path / "shards", vocab_size=256)
    monkeypatch.setenv("WORLD_SIZE", str(layout.gpus))
    run = run_config(SMALL, layout, SEQ, preset="tiny", tokens=1e4)
    rc, _, err = cli(*_train_argv(torchrun_command(run, GPU), shards, tmp_path / "r"),
                     *overrides, "--dry-run")
    assert rc == 2 and err == f"error: {errs[0]}\n"
