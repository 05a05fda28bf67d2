"""``evaluate_run``: the Python API behind ``scalinglab eval`` (load, score, write results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalinglab.eval.contamination import load_index
from scalinglab.eval.model_io import load_model_and_tokenizer
from scalinglab.eval.runner import evaluate
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tasks import resolve_task
from scalinglab.io import atomic_write_json, read_json_object, read_json_or_none


def heldout_for(run_dir: Path) -> Path | None:
    """``val_docs.jsonl`` of the shards the run trained on, if there is one."""
    config = run_dir / "config.json"
    if not config.is_file():
        return None
    data = read_json_object(config, "run config").get("data") or ""
    path = Path(data) / "val_docs.jsonl"
    return path if data and path.is_file() else None


def evaluate_run(model: str | Path, tasks: list[str], shots: list[int],
                 tokenizer: str | None = None, heldout: str | Path | None = None,
                 index: str | Path | None = None, seed: int = 0, limit: int = 0,
                 device: str = "cpu", batch_tokens: int = 8192, out: str | Path | None = None,
                 progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Evaluate a run directory / ``model.safetensors`` / ``step-N.pt`` and write the results.

    Args:
        model: what to evaluate.
        tasks: task arguments (built-in ``NAME``, ``NAME=FILE.jsonl`` or ``TASK.yaml``).
        shots: shot counts to score each prompted task at.
        tokenizer: ``tokenizer.json`` or ``"bytes"``; default: the run's.
        heldout: ``val_docs.jsonl`` for built-in tasks; default: the run's shards'.
        index: the corpus n-gram index, to also score clean and dirty subsets.
        seed: seeds few-shot sampling and built-in tasks.
        limit: at most this many examples per task (0: all).
        out: results file; default ``RUN/results.json``.

    Returns:
        (results, path written); the schema is in :mod:`scalinglab.eval.runner`.
    """
    run_dir, net, tok = load_model_and_tokenizer(model, tokenizer, device)
    heldout = heldout or heldout_for(run_dir)
    loaded = [resolve_task(t, heldout, seed, limit) for t in tasks]
    dirty_index = load_index(index) if index else None
    scorer = Scorer(net, tok, batch_tokens=batch_tokens, progress=progress)
    path = Path(out) if out else run_dir / "results.json"
    results = evaluate(
        scorer, loaded, shots, seed, dirty_index, model=str(model),
        tokenizer=getattr(tok, "path", "bytes"), model_id=model_id(model),
        index_id=str(Path(index).resolve()) if index else "", previous=read_json_or_none(path),
        on_update=lambda r: atomic_write_json(path, r))
    atomic_write_json(path, results)
    return results, path


def model_id(model: str | Path) -> str:
    """Size, modification time and inode of the weights: they change whenever the weights are
    rewritten (exports replace the file atomically, so the inode changes too)."""
    path = Path(model)
    weights = path / "model.safetensors" if path.is_dir() else path
    st = weights.stat()
    return f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}"


