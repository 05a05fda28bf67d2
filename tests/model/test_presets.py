import pytest

from scalinglab.config import ConfigError
from scalinglab.model.accounting import count_params
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import get_preset, shape_for_params


def test_unknown_preset_lists_names():
    with pytest.raises(ConfigError, match="gpt3-175b"):
        get_preset("gpt-5")


def test_config_round_trips_through_json(tmp_path):
    cfg = get_preset("gopher-7.1b")
    cfg.to_json(tmp_path / "c.json")
    assert ModelConfig.from_file(tmp_path / "c.json") == cfg
    assert ModelConfig.from_dict(cfg.as_dict()) == cfg


def test_merge_coerces_and_rejects_bad_fields():
    cfg = get_preset("tiny").merge(["n_layers=4", "norm=rmsnorm", "position=rotary"])
    assert cfg.n_layers == 4 and cfg.norm == "rmsnorm" and cfg.position == "rotary"
    with pytest.raises(ConfigError, match="n_layerz"):
        get_preset("tiny").merge(["n_layerz=4"])
    with pytest.raises(ConfigError, match="norm"):
        get_preset("tiny").merge(["norm=batchnorm"])


def test_inconsistent_heads_is_a_clear_error():
    with pytest.raises(ConfigError, match="n_heads"):
        ModelConfig(d_model=100, n_heads=3)


@pytest.mark.parametrize("target", [1e5, 1e6, 3e7, 1e9])
def test_shape_generator_hits_target(target):
    cfg = shape_for_params(target, vocab_size=4096, max_seq_len=256)
    assert count_params(cfg).non_embedding == pytest.approx(target, rel=0.1)
    assert cfg.n_heads * cfg.head_dim == cfg.d_model
