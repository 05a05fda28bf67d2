"""``scalinglab export RUN --to hf --out DIR``: a run as a stock ``transformers`` directory.

DIR holds ``config.json``, ``model.safetensors`` (or ``model-0000i-of-0000n.safetensors`` +
``model.safetensors.index.json`` above ``max_shard_size``), ``generation_config.json`` and
the tokenizer files (see ``hf_tokenizer``). It is written under a temporary name and renamed
into place when complete, so an interrupted export never looks finished.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from scalinglab.errors import ScalinglabError
from scalinglab.eval.tokenizer import Tokenizer as RunTokenizer
from scalinglab.eval.tokenizer import tokenizer_for_run
from scalinglab.interop.hf_tokenizer import write_tokenizer
from scalinglab.interop.layouts import LayoutError, layout_for
from scalinglab.interop.source import load_source
from scalinglab.io import replace_dir
from scalinglab.model.transformer import Transformer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise ScalinglabError("Hugging Face export/import needs transformers: "
                              "pip install 'scalinglab[hf]'") from None
    return transformers


def to_hf_model(model: Transformer, eot_id: int | None = None):
    """Our model as the equivalent stock ``transformers`` model (same weights, fp32)."""
    transformers = require_transformers()
    cfg = model.config
    layout = layout_for(cfg)
    hf_cfg = transformers.AutoConfig.for_model(
        **layout.hf_config(cfg), architectures=[layout.architecture],
        bos_token_id=eot_id, eos_token_id=eot_id)
    hf = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()
             if not (cfg.tie_embeddings and k == "output.weight")}
    missing, unexpected = hf.load_state_dict(layout.to_hf(cfg, state), strict=False)
    missing = [m for m in missing if not (cfg.tie_embeddings and m == "lm_head.weight")]
    if missing or unexpected:  # a mapping bug, not the user's: say which tensors
        raise LayoutError(f"{layout.name} mapping incomplete: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    if cfg.tie_embeddings:
        hf.tie_weights()
    if eot_id is not None:
        hf.generation_config = transformers.GenerationConfig(
            bos_token_id=eot_id, eos_token_id=eot_id, pad_token_id=eot_id, do_sample=False,
            max_length=cfg.max_seq_len)
    return hf.eval()


def export_hf(path: str | Path, out: str | Path, dtype: str = "fp32",
              max_shard_size: str | int = "2GB", tokenizer: RunTokenizer | None = None) -> Path:
    """Export the model at ``path`` (run dir, ``.safetensors``, ``.pt`` or DCP step dir)."""
    if dtype not in DTYPES:
        raise ScalinglabError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    model, run_dir = load_source(path)
    layout_for(model.config)  # refuse an unmappable variant before reading the tokenizer
    tok = tokenizer or tokenizer_for_run(run_dir, model.config.vocab_size)
    hf = to_hf_model(model, tok.eot_id).to(DTYPES[dtype])
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed export
    tmp.mkdir(parents=True)
    hf.save_pretrained(tmp, max_shard_size=max_shard_size)
    write_tokenizer(tmp, tok, model.config.max_seq_len)
    return replace_dir(tmp, out)
