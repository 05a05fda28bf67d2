"""``scalinglab import --from-hf DIR --out RUN``: a Llama- or GPT-2-layout checkpoint as a
scalinglab run directory: ``config.json`` (a TrainConfig holding the model), ``model.safetensors``
+ ``model_config.json`` and, when DIR has one, ``tokenizer.json`` — what ``eval``,
``toxicity`` and training code read.

Only safetensors weights are read (a ``pytorch_model.bin`` is a pickle: refused). A name that is
not a local directory is taken as a hub repository id and downloaded with ``huggingface_hub``;
offline (as here) that fails with one line saying to pass a local directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from scalinglab.errors import ScalinglabError
from scalinglab.interop.layouts import LayoutError, layout_of_hf
from scalinglab.io import atomic_write_json, read_json_object, replace_dir
from scalinglab.model.config import ModelConfig
from scalinglab.model.transformer import Transformer
from scalinglab.train.checkpoint import export_model
from scalinglab.train.config import TrainConfig

INDEX = "model.safetensors.index.json"


def resolve_source(src: str | Path) -> Path:
    """A local directory as is; otherwise a hub repository id, downloaded (needs a network)."""
    path = Path(src)
    if path.is_dir():
        return path
    if path.exists() or str(src).count("/") != 1:
        raise ScalinglabError(f"{src}: not a directory holding an HF checkpoint")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=str(src),
                                      allow_patterns=["*.json", "*.safetensors"]))
    except ImportError:
        raise ScalinglabError(f"{src}: no such directory (downloading it from the hub needs "
                              "huggingface_hub: pip install 'scalinglab[hf]')") from None
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, gated: all one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ScalinglabError(f"{src}: cannot download from the Hugging Face hub (offline? "
                              f"pass a local directory instead): {first}") from None


def read_hf_state(src: Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``src``'s ``model.safetensors`` or its shards (by the index)."""
    if (src / INDEX).is_file():
        index = read_json_object(src / INDEX, "safetensors index")
        files = sorted(set((index.get("weight_map") or {}).values()))
        if not files:
            raise ScalinglabError(f"{src / INDEX}: no 'weight_map'")
    elif (src / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        bins = "; pytorch_model.bin (a pickle) is not read" if any(src.glob("*.bin")) else ""
        raise ScalinglabError(f"{src}: no model.safetensors or {INDEX}{bins}")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        try:
            state.update(load_file(str(src / name), device="cpu"))
        except Exception as e:  # noqa: BLE001 - safetensors' own error type
            raise ScalinglabError(f"{src / name}: not a safetensors file: {e}") from None
    return state


def from_hf_dir(src: Path) -> Transformer:
    """The scalinglab model equivalent to the HF checkpoint in ``src`` (fp32)."""
    hf = read_json_object(src / "config.json", "HF model config")
    layout = layout_of_hf(hf, str(src / "config.json"))
    try:
        cfg = ModelConfig.from_dict(layout.model_config(hf))
    except ScalinglabError as e:  # LayoutError or ConfigError: name the file
        raise ScalinglabError(f"{src / 'config.json'}: {e}") from None
    state = {k: v.float() for k, v in read_hf_state(src).items()}
    try:
        ours = layout.from_hf(cfg, state)
    except LayoutError as e:
        raise LayoutError(f"{src}: {e}") from None
    model = Transformer(cfg)
    if cfg.tie_embeddings:
        ours.pop("output.weight", None)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    missing = [m for m in missing if not (cfg.tie_embeddings and m == "output.weight")]
    if missing or unexpected:
        raise LayoutError(f"{src}: weights do not fit its config.json: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return model.eval()


def import_hf(src: str | Path, out: str | Path) -> Path:
    """Convert ``src`` (local directory or hub id) into the run directory ``out``."""
    local = resolve_source(src)
    model = from_hf_dir(local)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export_model(tmp, model, model.config)
    train_cfg = TrainConfig(model=model.config, preset=f"hf:{src}", out=str(out))
    atomic_write_json(tmp / "config.json", train_cfg.as_dict())
    if (local / "tokenizer.json").is_file():
        shutil.copyfile(local / "tokenizer.json", tmp / "tokenizer.json")
    atomic_write_json(tmp / "imported_from.json", {
        "source": str(src), "model_type": json.loads((local / "config.json").read_text())
        .get("model_type"), "params": sum(p.numel() for p in model.parameters())})
    return replace_dir(tmp, out)
