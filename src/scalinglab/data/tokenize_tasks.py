"""``data tokenize executor=local|slurm|ray tasks=T``: the input files tokenised by T tasks.

Task r of T tokenises the corpus files r, r+T, ... with the one-process path's own
``token_files.tokenize_file`` (each file its own shard pair, named by the file's index, then
its marker), reading the held-out ids the driver chose once (``SHARDS/.val-ids.json``); so
the shards are the same as the one-process run's, and a rerun skips the files whose marker
exists. datatrove's logging directory (completion markers, ``logs/task_NNNNN.log``) is
``SHARDS/tasks/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep as DatatroveStep

from scalinglab import io as sio
from scalinglab.data.executors import ExecutorKind, build_executor, run_stage
from scalinglab.data.token_files import (
    TokenizeConfig,
    corpus_files,
    file_markers,
    load_tokenizer,
    tokenize_file,
)
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_bytes

VAL_IDS = ".val-ids.json"  # the held-out ids, for the tasks
TASKS_DIR = "tasks"  # datatrove's logging directory (markers, task logs)


class TokenizeStage(DatatroveStep):
    """Task r of T tokenises input files r, r+T, ... (each its own shard pair, the index of
    the file; the held-out ids were chosen once by the driver)."""

    type = "scalinglab"
    name = "tokenize"

    def __init__(self, cfg_dict: dict[str, Any]) -> None:
        super().__init__()
        self.cfg_dict = cfg_dict

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:
        cfg = TokenizeConfig.from_dict(self.cfg_dict)
        out = Path(cfg.out)
        files = corpus_files(cfg.corpus)
        tokenizer = load_tokenizer(cfg.tokenizer, cfg.eot_token)
        val_ids = set(json.loads((out / VAL_IDS).read_text()))
        for index in range(rank, len(files), world_size):
            tokenize_file(out, index, files[index], tokenizer, val_ids, cfg.batch_docs,
                           _NoBar())
            self.stat_update("files")
        yield from ()


class _NoBar:
    def update(self, n: int) -> None:
        pass


def tokenize_sharded(cfg: TokenizeConfig, out: Path, files: list[Path],
                      val_ids: set[str]) -> None:
    """Run (or launch) the tokenize tasks on datatrove's executor (``cfg.executor``)."""
    atomic_write_bytes(out / VAL_IDS, sio.dumps(sorted(val_ids)).encode())
    tasks = max(1, min(cfg.tasks, len(files)))  # a task without a file would do nothing
    ex = build_executor(cfg.executor, [TokenizeStage(cfg.as_dict())], tasks=tasks,
                        workers=min(cfg.workers, tasks) if cfg.workers > 0 else -1,
                        logging_dir=out / TASKS_DIR, name="tokenize", slurm=cfg.slurm,
                        ray=cfg.ray)
    if cfg.executor == ExecutorKind.slurm:
        ex.run()  # submits the array job; a rerun after it ends writes meta.json
        raise ScalinglabError(f"tokenize: launched {tasks} Slurm task(s) (logs: "
                              f"{out / TASKS_DIR}); rerun this command when they have finished")

    def docs_done() -> int:
        return sum(d["train"]["docs"] + d["val"]["docs"] for d in file_markers(out, len(files))
                   .values())

    run_stage(ex, "tokenize", out / TASKS_DIR, tasks, cfg.progress, docs_done,
              command="tokenize")
