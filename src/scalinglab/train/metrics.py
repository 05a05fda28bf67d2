"""Metrics: the run's ``metrics.jsonl`` and the MFU bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

from scalinglab.utils import strict_json


class JsonlLogger:
    """Appends one JSON object per logged step to ``RUN/metrics.jsonl``.

    On resume from step s, rows after s are dropped first, so the file always describes one
    uninterrupted curve.
    """

    def __init__(self, path: str | Path, resume_step: int | None):
        self.path = Path(path)
        if resume_step is None:
            self.path.write_text("")
        else:
            self._truncate_after(resume_step)
        self._fh = open(self.path, "a")

    def _truncate_after(self, step: int) -> None:
        keep = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line from a kill
                if row.get("step", 0) > step:
                    break
                keep.append(line)
        self.path.write_text("".join(line + "\n" for line in keep))

    def rewind(self, step: int) -> None:
        """Drop the rows after ``step`` (a rollback to that step's checkpoint)."""
        self._fh.close()
        self._truncate_after(step)
        self._fh = open(self.path, "a")

    def log(self, row: dict) -> None:
        self._fh.write(strict_json.dumps(row) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
