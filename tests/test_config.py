"""The Config base: JSON/YAML round trips, dotlist overrides, coercion and clear errors."""

from __future__ import annotations

import dataclasses
import enum

import pytest

from scalinglab.config import Config, ConfigError
from scalinglab.model.presets import get_preset
from scalinglab.train.config import TrainConfig


class Colour(enum.StrEnum):
    red = "red"
    blue = "blue"


@dataclasses.dataclass
class Inner(Config):
    size: int = 1
    colour: Colour = Colour.red


@dataclasses.dataclass
class Outer(Config):
    inner: Inner = dataclasses.field(default_factory=Inner)
    rate: float = 0.5
    name: str = "x"
    flag: bool = False
    maybe: int | None = None
    items: list[int] = dataclasses.field(default_factory=list)


def test_round_trip_json_and_yaml(tmp_path):
    cfg = Outer(inner=Inner(3, Colour.blue), rate=2.0, name="n", flag=True, maybe=4, items=[1])
    cfg.to_json(tmp_path / "c.json")
    assert Outer.from_file(tmp_path / "c.json") == cfg
    (tmp_path / "c.yaml").write_text("inner: {size: 3, colour: blue}\nrate: 2\nname: n\n"
                                     "flag: true\nmaybe: 4\nitems: [1]\n")
    assert Outer.from_file(tmp_path / "c.yaml") == cfg
    assert Outer.from_dict(cfg.as_dict()) == cfg
    assert cfg.as_dict()["inner"]["colour"] == "blue"  # plain values, not enum objects


def test_merge_dotlist_and_dict():
    cfg = Outer().merge(["inner.size=7", "inner.colour=blue", "rate=1e-3", "maybe=null",
                         "items=[1, 2]", "name=hello world"])
    assert cfg == Outer(inner=Inner(7, Colour.blue), rate=1e-3, name="hello world",
                        items=[1, 2])
    assert Outer().merge({"inner.size": "2e3"}).inner.size == 2000  # 2e3 tokens style
    assert Outer().merge(["maybe=5"]).maybe == 5


@pytest.mark.parametrize("override,needle", [
    ("inner.sise=1", "inner.sise"),
    ("rate.x=1", "'rate' is not a nested config"),
    ("inner.size=1.5", "Inner.size"),
    ("inner.colour=green", "Inner.colour: 'green' is not one of ['red', 'blue']"),
    ("flag=maybe", "Outer.flag"),
    ("rate", "key=value"),
    ("name=3", "Outer.name"),
])
def test_bad_overrides_name_the_field(override, needle):
    with pytest.raises(ConfigError) as info:
        Outer().merge([override])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_unknown_keys_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown field"):
        Outer.from_dict({"colour": "red"})
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        Outer.from_file(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="missing.yaml"):
        Outer.from_file(tmp_path / "missing.yaml")


def test_train_config_round_trip_with_nested_model(tmp_path):
    cfg = TrainConfig(model=get_preset("gopher-44m"), tokens=10**6, dtype="bf16")
    cfg.to_json(tmp_path / "t.json")
    assert TrainConfig.from_file(tmp_path / "t.json") == cfg
    assert cfg.merge(["model.n_layers=2"]).model.n_layers == 2
    with pytest.raises(ConfigError, match="dtype"):
        TrainConfig(dtype="fp16")


@pytest.mark.parametrize("field,value", [("lr", 0.0), ("micro_batch_size", -1),
                                         ("warmup_fraction", 1.0), ("keep_checkpoints", 0)])
def test_train_config_ranges(field, value):
    with pytest.raises(ConfigError, match=f"TrainConfig.{field}="):
        TrainConfig().merge({field: value})


def test_model_merge_rederives_head_size_and_ff_from_python():
    """The Python API follows a new width like the CLI does; explicit sizes are kept."""
    base = get_preset("gpt3-125m")  # 768 wide, 12 heads of 64, d_ff 3072
    wider = base.merge({"d_model": 1536})
    assert (wider.d_head, wider.d_ff) == (128, 6144)
    kept = base.merge(["d_model=1536", "d_head=64", "d_ff=4000"])
    assert (kept.d_head, kept.d_ff) == (64, 4000)
    with pytest.raises(ConfigError, match="n_heads=5"):
        base.merge({"n_heads": 5})  # not silently 5 heads of 64 on a 768 width
