"""Reading the JSON files scalinglab keeps beside its outputs (markers, plans, run configs).

They are written by scalinglab, but a user may hand-edit, truncate or replace them; each reader
turns what it finds into one ``ScalinglabError`` line naming the file (and line or field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalinglab.errors import ScalinglabError


def read_json_object(path: str | Path, what: str = "file",
                     error: type[ScalinglabError] = ScalinglabError) -> dict[str, Any]:
    """The JSON object in ``path``; one-line ``error`` for unreadable, torn or non-object
    files."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: {what} is not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def require_fields(data: dict[str, Any], fields: dict[str, type | tuple[type, ...]],
                   where: str, error: type[ScalinglabError] = ScalinglabError) -> dict[str, Any]:
    """``data``, checked to hold each of ``fields`` with a value of its type."""
    for name, tp in fields.items():
        if name not in data:
            raise error(f"{where}: missing field {name!r}")
        value = data[name]
        types = tp if isinstance(tp, tuple) else (tp,)
        # bool is an int to isinstance; `true` where a count belongs is still a wrong type
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise error(f"{where}: field {name!r} has the wrong type "
                        f"({type(value).__name__} {value!r:.40})")
    return data
