"""Metrics: the run's ``metrics.jsonl`` and the MFU bookkeeping."""

from __future__ import annotations

from pathlib import Path

from scalinglab.io import JsonlWriter, atomic_write_text, dumps, read_jsonl


class JsonlLogger:
    """Appends one JSON object per logged step to ``RUN/metrics.jsonl``.

    On resume from step s, rows after s are dropped first, so the file always describes one
    uninterrupted curve.
    """

    def __init__(self, path: str | Path, resume_step: int | None):
        self.path = Path(path)
        if resume_step is None:
            atomic_write_text(self.path, "")
        else:
            self._truncate_after(resume_step)
        self._writer = JsonlWriter(self.path)

    def _truncate_after(self, step: int) -> None:
        # read_jsonl drops a torn last line (a kill mid-append); the rewrite is atomic so a
        # second crash here cannot lose the rows that stay.
        keep = [row for row in read_jsonl(self.path) if row.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(dumps(row) + "\n" for row in keep))

    def rewind(self, step: int) -> None:
        """Drop the rows after ``step`` (a rollback to that step's checkpoint)."""
        self._writer.close()
        self._truncate_after(step)
        self._writer = JsonlWriter(self.path)

    def log(self, row: dict) -> None:
        self._writer.write(row)

    def close(self) -> None:
        self._writer.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / "metrics.jsonl")
