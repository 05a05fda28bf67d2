"""Load a model to evaluate from a run directory, an exported ``.safetensors`` file or a
training checkpoint ``RUN/checkpoints/step-N.pt`` (weights only, no pickled code)."""

from __future__ import annotations

from pathlib import Path

import torch

from scalinglab.errors import ScalinglabError
from scalinglab.eval.tokenizer import Tokenizer, load_tokenizer, tokenizer_for_run
from scalinglab.io import read_json_object, require_fields
from scalinglab.model.config import ModelConfig
from scalinglab.model.transformer import Transformer
from scalinglab.train.checkpoint import load_checkpoint, load_model


def run_dir_of(path: str | Path) -> Path:
    """The run directory a model path belongs to (where results.json goes)."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.suffix == ".pt" and path.parent.name == "checkpoints":
        return path.parent.parent
    return path.parent


def load_model_and_tokenizer(model: str | Path, tokenizer: str | None = None,
                             device: str = "cpu") -> tuple[Path, Transformer, Tokenizer]:
    """(run directory, model, tokenizer) for a stage that reads a run: the tokenizer given, else
    the run's own; one that has ids the model cannot embed is refused."""
    run_dir = run_dir_of(model)
    net = load_eval_model(model, device=device)
    vocab = net.config.vocab_size
    tok = load_tokenizer(tokenizer) if tokenizer else tokenizer_for_run(run_dir, vocab)
    if tok.vocab_size > vocab:
        raise ScalinglabError(f"tokenizer has {tok.vocab_size} ids but the model only {vocab}")
    return run_dir, net, tok


def load_eval_model(path: str | Path, device: str = "cpu") -> Transformer:
    path = Path(path)
    if not path.exists():
        raise ScalinglabError(f"{path}: no such run directory or checkpoint")
    if path.suffix != ".pt":
        return load_model(path, device=device)
    config = run_dir_of(path) / "config.json"
    if not config.is_file():
        raise ScalinglabError(f"{config}: missing; cannot tell the checkpoint's model shape")
    cfg = _run_model_config(config)
    state = load_checkpoint(path).get("model")
    if not isinstance(state, dict):
        raise ScalinglabError(f"{path}: checkpoint has no 'model' weights")
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    model = Transformer(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        # torch lists every key on its own line; the first one says what kind of mismatch
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise ScalinglabError(f"{path}: weights do not fit {config}: {first[:200]}") from None
    return model.to(torch.device(device))


def _run_model_config(config: Path) -> ModelConfig:
    """The ``model`` of a run's config.json (a TrainConfig), naming the file when it is bad."""
    data = require_fields(read_json_object(config, "run config"), {"model": dict}, str(config))
    try:
        return ModelConfig.from_dict(data["model"])
    except ScalinglabError as e:
        raise ScalinglabError(f"{config}: model: {e}") from None
