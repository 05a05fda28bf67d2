"""The ``models`` and ``train`` commands: output, overrides and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from scalinglab.cli import STAGES, main
from scalinglab.model.accounting import count_params
from scalinglab.model.presets import PRESETS, get_preset


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_models_json_lists_every_preset(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {r["preset"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == set(PRESETS)
    assert rows["gopher-280b"]["params_total"] == count_params(get_preset("gopher-280b")).total
    assert rows["gpt3-13b"]["d_head"] == 128
    assert (rows["llama3-8b"]["n_kv_heads"], rows["gpt3-13b"]["n_kv_heads"]) == (8, 40)


def test_models_table(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "chinchilla-70b" in out and "published" in out


def test_train_json_and_dry_run(capsys, shards, tmp_path):
    base = ["train", "--preset", "tiny", "--data", str(shards), "--tokens", "4096",
            "--out", str(tmp_path / "run"), "--quiet", "model.max_seq_len=32", "batch_tokens=512"]
    code, out, _ = run_cli(capsys, *base, "--dry-run")
    plan = json.loads(out)
    assert code == 0 and plan["plan"]["steps"] == 8
    assert plan["config"]["model"]["vocab_size"] == 64  # follows the shards
    assert not (tmp_path / "run").exists()
    code, out, _ = run_cli(capsys, *base, "--json", "--peak-flops", "1e12")
    summary = json.loads(out)
    assert code == 0 and summary["steps"] == 8 and (tmp_path / "run" / "summary.json").exists()
    assert summary["peak_flops"] == 1e12 and 0 < summary["mfu"] < 1


def test_width_override_rederives_head_size_and_ff(capsys, shards, tmp_path):
    code, out, _ = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"), "--dry-run",
                           "model.d_model=96", "model.n_heads=6")
    model = json.loads(out)["config"]["model"]
    assert code == 0 and (model["d_head"], model["d_ff"]) == (16, 384)
    code, out, _ = run_cli(capsys, "train", "--preset", "gpt3-13b", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"), "--dry-run")
    assert json.loads(out)["config"]["model"]["d_head"] == 128  # explicit sizes are kept


def test_unknown_preset_lists_names(capsys, shards, tmp_path):
    code, _, err = run_cli(capsys, "train", "--preset", "gpt5", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "gpt5", "tiny", "gpt3-175b", "chinchilla-70b")


def test_inconsistent_heads_is_one_line(capsys, shards, tmp_path):
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"), "model.n_heads=3")
    assert_one_line_error(code, err, "d_model=64", "n_heads=3", "d_head")
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"),
                           "model.position=rotary", "model.d_head=5")
    assert_one_line_error(code, err, "d_head=5", "rotary")


def test_missing_shard_dir(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data",
                           str(tmp_path / "nope"), "--tokens", "1e5", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, str(tmp_path / "nope"), "does not exist")


@pytest.mark.parametrize("header", ["{not json", '{"format": "other"}',
                                    '{"format": "scalinglab-shard", "dtype": "uint16"}'])
def test_malformed_shard_header(capsys, shards, tmp_path, header):
    (shards / "train-00000.json").write_text(header)
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "train-00000.json")


def test_truncated_shard(capsys, shards, tmp_path):
    data = (shards / "val-00000.bin").read_bytes()
    (shards / "val-00000.bin").write_bytes(data[:-2])
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "val-00000.bin", "bytes")


def test_budget_smaller_than_one_step(capsys, shards, tmp_path):
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1000", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "1000 tokens", "smaller than one step")
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--flops", "1e3", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "smaller than one step")
    assert not (tmp_path / "r").exists()


def test_bad_override(capsys, shards, tmp_path):
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"), "lr=fast")
    assert_one_line_error(code, err, "TrainConfig.lr")
    code, _, err = run_cli(capsys, "train", "--preset", "tiny", "--data", str(shards),
                           "--tokens", "1e5", "--out", str(tmp_path / "r"), "learning_rate=1")
    assert_one_line_error(code, err, "learning_rate")


@pytest.mark.parametrize("stage", [None, *STAGES])
def test_help_renders_for_every_stage(stage, capsys):
    """argparse formats help strings with %: a bare '95%' in one of them broke `--help`."""
    with pytest.raises(SystemExit) as e:
        main(["--help"] if stage is None else [stage, "--help"])
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out
