"""Helpers shared by the CLI stages."""

from __future__ import annotations

import sys
from typing import Any

from scalinglab import io as sio


def print_json(data: Any) -> None:
    sys.stdout.write(sio.dumps(data, indent=2))
    sys.stdout.write("\n")



def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned text table (no extra dependency, pipes cleanly)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
