"""Config base class: plain-data dataclasses that round-trip through JSON/YAML.

Every component of scalinglab is configured by a dataclass deriving from :class:`Config`.
Fields hold plain values, enums or nested configs (never classes), so a config can be saved
next to each checkpoint and re-read later. ``merge`` applies ``key=value`` dotlist overrides
from the command line, converting each value to the declared field type.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from pathlib import Path
from typing import Any, Self

import yaml

from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_json


class ConfigError(ScalinglabError, ValueError):
    """A config value or override that cannot be applied; the message names the field."""


@dataclasses.dataclass
class Config:
    """Base for all configs: ``as_dict`` / ``from_dict`` / ``merge`` / JSON and YAML I/O."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: " + unknown_field(unknown[0], names))
        kwargs = {k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    def merge(self, overrides: list[str] | dict[str, Any]) -> Self:
        """Return a copy with ``a.b=value`` overrides applied (strings are parsed as YAML)."""
        data = self.as_dict()
        items = overrides.items() if isinstance(overrides, dict) else map(_split, overrides)
        for key, value in items:
            _set_dotted(data, key, value, type(self).__name__)
        return type(self).from_dict(data)

    def to_json(self, path: str | Path) -> None:
        atomic_write_json(path, self.as_dict())

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        path = Path(path)
        data = read_yaml(path, "config")
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_dict(data)
        except ConfigError as e:  # name the file: the field alone does not say where it is
            raise ConfigError(f"{path}: {e}") from None


# Conventional spellings of fields scalinglab names more briefly; an unknown key close to one
# of these is pointed at the short name (``lerning_rate`` -> ``lr``).
ALIASES = {"learning_rate": "lr", "num_layers": "n_layers", "n_layer": "n_layers",
           "hidden_size": "d_model", "num_heads": "n_heads", "n_head": "n_heads",
           "num_workers": "workers", "num_key_value_heads": "n_kv_heads",
           "num_kv_heads": "n_kv_heads"}


def unknown_field(key: str, known, prefix: str = "") -> str:
    """``unknown field 'k'; did you mean `x`?`` (difflib), else the list of known fields."""
    leaf = key.rsplit(".", 1)[-1]
    candidates = {k: k for k in known} | {a: t for a, t in ALIASES.items() if t in known}
    close = difflib.get_close_matches(leaf, list(candidates), n=1)
    if close:
        return f"unknown field {key!r}; did you mean `{prefix}{candidates[close[0]]}`?"
    return f"unknown field {key!r}; known: {', '.join(sorted(known))}"


def read_yaml(path: Path, what: str) -> Any:
    """A YAML (or JSON) file, with one-line errors naming the file (and line) for a missing
    file, bytes that are not UTF-8 and broken YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror}") from None
    try:
        return yaml.safe_load(text)  # JSON is a subset of YAML
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: {what} is not valid YAML: "
                          f"{getattr(e, 'problem', None) or e}") from None


def _split(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _set_dotted(data: dict[str, Any], key: str, value: Any, owner: str) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"{owner}: override {key!r}: {part!r} is not a nested config")
        node = node[part]
    if parts[-1] not in node:
        prefix = key[: len(key) - len(parts[-1])]
        raise ConfigError(f"{owner}: " + unknown_field(key, node, prefix))
    node[parts[-1]] = value


def _to_plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.as_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a plain value (from JSON/YAML/CLI) to the declared field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(arg, v, where) for v in value]
    if origin is dict or tp is Any:
        return value
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return tp.from_dict(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = [m.value for m in tp]
            raise ConfigError(f"{where}: {value!r} is not one of {choices}") from None
    return _coerce_scalar(tp, value, where)


def _coerce_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # allow 1e6 for token counts
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                pass
            else:
                if f.is_integer():
                    return int(f)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value
