"""ParallelDims and ParallelConfig: degrees, validation errors, the --parallel flag."""

from __future__ import annotations

import pytest

from scalinglab.config import ConfigError
from scalinglab.layout.config import ParallelConfig, PPSchedule, parse_degrees
from scalinglab.model.presets import tiny
from scalinglab.parallel.dims import ParallelDims
from scalinglab.train.config import TrainConfig


def test_fsdp_minus_one_takes_the_rest_of_the_world() -> None:
    dims = ParallelDims.from_config(ParallelConfig(fsdp=-1, tp=2, pp=2), world_size=16)
    assert (dims.dp, dims.fsdp, dims.tp, dims.pp) == (1, 4, 2, 2)
    assert dims.dp_degree == 4 and dims.local_batch(32) == 8


def test_product_must_equal_world_size() -> None:
    with pytest.raises(ConfigError, match="world size is 8"):
        ParallelDims.from_config(ParallelConfig(dp=2, tp=2), world_size=8)
    with pytest.raises(ConfigError, match="does not divide the world size"):
        ParallelDims.from_config(ParallelConfig(fsdp=-1, tp=3), world_size=8)


@pytest.mark.parametrize("pcfg, model_overrides, batch, micro, match", [
    (ParallelConfig(tp=3), [], 8, 0, "tp=3 does not divide model.n_heads=4"),
    (ParallelConfig(tp=2), ["position=relative"], 8, 0, "relative"),
    (ParallelConfig(pp=2), ["n_layers=3", "tie_embeddings=false"], 8, 2, "n_layers=3"),
    (ParallelConfig(pp=2), [], 8, 2, "tie_embeddings=false"),
    (ParallelConfig(pp=2), ["tie_embeddings=false"], 8, 0, "fewer than pp=2"),
    (ParallelConfig(pp=2, pp_schedule=PPSchedule.interleaved_1f1b),
     ["tie_embeddings=false"], 8, 2, r"4 pipeline stages .*n_layers=2"),
    (ParallelConfig(pp=2, pp_stages_per_rank=2), ["n_layers=4", "tie_embeddings=false"], 8, 2,
     "needs parallel.pp_schedule=interleaved_1f1b"),
    (ParallelConfig(fsdp=3), [], 8, 0, "does not divide the batch of 8"),
    (ParallelConfig(fsdp=2), [], 8, 3, "micro_batch_size=3"),
])
def test_invalid_layouts_name_the_field(pcfg, model_overrides, batch, micro, match) -> None:
    model = tiny().merge(model_overrides)
    world = pcfg.dp * max(pcfg.fsdp, 1) * pcfg.tp * pcfg.pp
    dims = ParallelDims.from_config(pcfg, world)
    with pytest.raises(ConfigError, match=match):
        dims.validate(model, pcfg, batch, micro, seq_len=64)


def test_valid_3d_layout_passes() -> None:
    pcfg = ParallelConfig(fsdp=2, tp=2, pp=2)
    dims = ParallelDims.from_config(pcfg, 8)
    dims.validate(tiny().merge(["n_layers=4", "tie_embeddings=false"]), pcfg, 8, 2, 64)
    assert dims.num_microbatches(8, 2) == 2


def test_parse_degrees_and_config_round_trip() -> None:
    assert parse_degrees("dp=2, fsdp=-1,tp=2") == {"dp": 2, "fsdp": -1, "tp": 2}
    with pytest.raises(ConfigError, match="ep=2"):
        parse_degrees("ep=2")
    with pytest.raises(ConfigError, match="'x'"):
        parse_degrees("tp=x")
    cfg = TrainConfig().merge(["parallel.tp=2", "parallel.pp_schedule=gpipe"])
    assert TrainConfig.from_dict(cfg.as_dict()) == cfg
    assert cfg.parallel.is_parallel and not TrainConfig().parallel.is_parallel
    with pytest.raises(ConfigError, match="interleaved_1f1b"):
        TrainConfig().merge(["parallel.pp_schedule=zigzag"])
    assert ParallelConfig(pp_schedule=PPSchedule.interleaved_1f1b).stages_per_rank == 2


def test_dry_run_checks_the_layout(tmp_path, capsys) -> None:
    import json

    from scalinglab.cli import main
    from tests.conftest import make_shards

    data = make_shards(tmp_path / "shards", vocab_size=256)
    args = ["train", "--preset", "tiny", "--data", str(data), "--tokens", "1e5", "--dry-run"]
    assert main([*args, "--parallel", "fsdp=2,tp=2,pp=2", "model.n_layers=4",
                 "model.tie_embeddings=false", "micro_batch_size=4"]) == 0
    layout = json.loads(capsys.readouterr().out)["parallel"]
    assert layout["world_size"] == 8 and layout["local_batch"] == 64
    assert layout["microbatches"] == 16
    assert main([*args, "--parallel", "tp=8"]) == 2
    assert "tp=8 does not divide model.n_heads=4" in capsys.readouterr().err
