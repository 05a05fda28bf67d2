"""The exact mappings between scalinglab's Transformer and stock ``transformers`` classes.

A layout is chosen from the model's variants (norm, position, MLP) and maps each of our
parameters to the HF name and layout that computes the same function; nothing is
approximated, so a variant without an exact equivalent is refused with the list of those that
have one. The mappings are pure functions on state dicts (no ``transformers`` import here).

- ``llama`` (RMSNorm + rotary + SwiGLU): ``LlamaForCausalLM``. Our rotary pairs adjacent
  dimensions (2i, 2i+1); HF's ``rotate_half`` pairs i with i + K/2, so the rows of wq and wk
  are permuted within each head (the same permutation as HF's own Llama conversion script).
- ``gpt2`` (LayerNorm + learned positions + GELU): ``GPT2LMHeadModel``. GPT-2's ``Conv1D``
  stores weights transposed and q/k/v fused in ``c_attn``; a bias-free model gets zero biases
  (GPT-2 always has them), which computes the same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from scalinglab.errors import ScalinglabError
from scalinglab.model.config import MLPType, ModelConfig, NormType, PositionType

State = dict[str, torch.Tensor]


class LayoutError(ScalinglabError, ValueError):
    """A model variant or an HF checkpoint with no exact mapping; names what is wrong."""


@dataclasses.dataclass(frozen=True)
class Layout:
    name: str
    architecture: str
    """The HF class named in config.json ``architectures``."""
    variants: tuple[NormType, PositionType, MLPType]
    to_hf: Callable[[ModelConfig, State], State]
    from_hf: Callable[[ModelConfig, State], State]
    hf_config: Callable[[ModelConfig], dict]
    model_config: Callable[[dict], dict]


# ----------------------------------------------------------------------------- llama


def _rope_to_hf(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows (2i, 2i+1) of each head -> rows (i, i + K/2): interleaved -> rotate_half."""
    return w.reshape(heads, -1, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _rope_from_hf(w: torch.Tensor, heads: int) -> torch.Tensor:
    return w.reshape(heads, 2, -1, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


_LLAMA_LAYER = {"attention_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm",
                "attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj",
                "attention.wv": "self_attn.v_proj", "attention.wo": "self_attn.o_proj",
                "mlp.w1": "mlp.gate_proj", "mlp.w3": "mlp.up_proj", "mlp.w2": "mlp.down_proj"}
_LLAMA_TOP = {"tok_embeddings.weight": "model.embed_tokens.weight",
              "norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}


def _llama_name(ours: str) -> str:
    if ours in _LLAMA_TOP:
        return _LLAMA_TOP[ours]
    _, i, rest = ours.split(".", 2)  # layers.{i}.{module}.{weight|bias}
    module, leaf = rest.rsplit(".", 1)
    return f"model.layers.{i}.{_LLAMA_LAYER[module]}.{leaf}"


def _llama_permute(cfg: ModelConfig, name: str, w: torch.Tensor, fn) -> torch.Tensor:
    if ".attention.wq." in name:
        return fn(w, cfg.n_heads)
    if ".attention.wk." in name:
        return fn(w, cfg.kv_heads)
    return w


def llama_to_hf(cfg: ModelConfig, state: State) -> State:
    return {_llama_name(k): _llama_permute(cfg, k, v, _rope_to_hf) for k, v in state.items()}


def llama_from_hf(cfg: ModelConfig, state: State) -> State:
    names = {_llama_name(k): k for k in _our_names(cfg)}
    return _rename_back(state, names, lambda k, v: _llama_permute(cfg, k, v, _rope_from_hf))


def llama_config(cfg: ModelConfig) -> dict:
    return {
        "model_type": "llama", "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ff_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim, "hidden_act": "silu", "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps, "tie_word_embeddings": cfg.tie_embeddings,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": cfg.bias, "mlp_bias": cfg.bias, "attention_dropout": 0.0,
        "pretraining_tp": 1, "initializer_range": 0.02,
    }


def llama_model_config(hf: dict) -> dict:
    if hf.get("attention_bias", False) != hf.get("mlp_bias", False):
        raise LayoutError("attention_bias != mlp_bias has no scalinglab "
                          "equivalent (one `bias` switch for every linear layer)")
    rope = hf.get("rope_parameters") or {"rope_type": "default",
                                         "rope_theta": hf.get("rope_theta", 10000.0)}
    if rope.get("rope_type", "default") != "default" or hf.get("hidden_act", "silu") != "silu":
        raise LayoutError(f"rope_type={rope.get('rope_type')!r} hidden_act="
                          f"{hf.get('hidden_act')!r}: only default RoPE with SiLU is supported")
    heads = _field(hf, "num_attention_heads")
    out = {"n_layers": _field(hf, "num_hidden_layers"), "d_model": _field(hf, "hidden_size"),
           "n_heads": heads, "d_head": hf.get("head_dim") or _field(hf, "hidden_size") // heads,
           "d_ff": _field(hf, "intermediate_size"), "vocab_size": _field(hf, "vocab_size"),
           "max_seq_len": _field(hf, "max_position_embeddings"), "norm": "rmsnorm",
           "position": "rotary", "mlp": "swiglu",
           "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
           "bias": bool(hf.get("attention_bias", False)),
           "norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
           "rope_theta": float(rope.get("rope_theta", 10000.0))}
    kv = hf.get("num_key_value_heads") or heads
    if kv != heads:
        out["n_kv_heads"] = kv  # grouped-query (1: multi-query) attention
    return out


# ----------------------------------------------------------------------------- gpt2

_GPT2_TOP = {"tok_embeddings.weight": "transformer.wte.weight",
             "input_positions.weight": "transformer.wpe.weight",
             "norm.weight": "transformer.ln_f.weight", "norm.bias": "transformer.ln_f.bias",
             "output.weight": "lm_head.weight"}
_GPT2_LAYER = {"attention_norm": "ln_1", "mlp_norm": "ln_2", "attention.wo": "attn.c_proj",
               "mlp.w1": "mlp.c_fc", "mlp.w2": "mlp.c_proj"}


def gpt2_to_hf(cfg: ModelConfig, state: State) -> State:
    out = {}
    for k, v in _with_zero_biases(cfg, state).items():
        if k in _GPT2_TOP:
            out[_GPT2_TOP[k]] = v
            continue
        _, i, rest = k.split(".", 2)
        module, leaf = rest.rsplit(".", 1)
        if module in ("attention.wq", "attention.wk", "attention.wv"):
            continue  # fused below
        is_conv = leaf == "weight" and module.startswith(("attention.", "mlp."))
        out[f"transformer.h.{i}.{_GPT2_LAYER[module]}.{leaf}"] = v.T if is_conv else v
    for i in range(cfg.n_layers):
        p = f"layers.{i}.attention"
        qkv = [state[f"{p}.{m}.weight"] for m in ("wq", "wk", "wv")]
        out[f"transformer.h.{i}.attn.c_attn.weight"] = torch.cat(qkv, 0).T
        biases = [state.get(f"{p}.{m}.bias", torch.zeros(cfg.attn_dim)) for m in ("wq", "wk", "wv")]
        out[f"transformer.h.{i}.attn.c_attn.bias"] = torch.cat(biases, 0)
    return out


def _with_zero_biases(cfg: ModelConfig, state: State) -> State:
    """A bias-free model's state with the zero biases GPT-2's modules always have."""
    if cfg.bias:
        return state
    out = dict(state)
    for k, v in state.items():
        if k.endswith(".weight") and not k.startswith(("tok_embeddings", "input_positions",
                                                       "output")):
            out.setdefault(k[: -len("weight")] + "bias", torch.zeros(v.shape[0], dtype=v.dtype))
    return out


def gpt2_from_hf(cfg: ModelConfig, state: State) -> State:
    out = {}
    for ours in _our_names(cfg):
        if ours in _GPT2_TOP:
            out[ours] = _get(state, _GPT2_TOP[ours], ours)
            continue
        _, i, rest = ours.split(".", 2)
        module, leaf = rest.rsplit(".", 1)
        if module in ("attention.wq", "attention.wk", "attention.wv"):
            fused = _get(state, f"transformer.h.{i}.attn.c_attn.{leaf}", ours)
            part = fused.T if leaf == "weight" else fused
            out[ours] = part.chunk(3, 0)["qkv".index(module[-1])].contiguous()
            continue
        v = _get(state, f"transformer.h.{i}.{_GPT2_LAYER[module]}.{leaf}", ours)
        is_conv = leaf == "weight" and module.startswith(("attention.", "mlp."))
        out[ours] = v.T.contiguous() if is_conv else v
    return out


def gpt2_config(cfg: ModelConfig) -> dict:
    return {
        "model_type": "gpt2", "vocab_size": cfg.vocab_size, "n_positions": cfg.max_seq_len,
        "n_embd": cfg.d_model, "n_layer": cfg.n_layers, "n_head": cfg.n_heads,
        "n_inner": cfg.ff_dim, "activation_function": "gelu",
        "layer_norm_epsilon": cfg.norm_eps, "tie_word_embeddings": cfg.tie_embeddings,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "initializer_range": 0.02,
    }


def gpt2_model_config(hf: dict) -> dict:
    act = hf.get("activation_function", "gelu_new")
    if act != "gelu" or hf.get("scale_attn_by_inverse_layer_idx") or \
            not hf.get("scale_attn_weights", True):
        raise LayoutError(f"activation_function={act!r} (or attention scaling) "
                          "has no exact scalinglab equivalent: only the exact 'gelu' with "
                          "1/sqrt(d_head) scaling is (GPT-2's own checkpoints use the tanh "
                          "approximation 'gelu_new')")
    d_model = _field(hf, "n_embd")
    return {"n_layers": _field(hf, "n_layer"), "d_model": d_model, "n_heads": _field(hf, "n_head"),
            "d_head": d_model // _field(hf, "n_head"), "d_ff": hf.get("n_inner") or 4 * d_model,
            "vocab_size": _field(hf, "vocab_size"), "max_seq_len": _field(hf, "n_positions"),
            "norm": "layernorm", "position": "learned", "mlp": "gelu",
            "tie_embeddings": bool(hf.get("tie_word_embeddings", True)), "bias": True,
            "norm_eps": float(hf.get("layer_norm_epsilon", 1e-5))}


# ----------------------------------------------------------------------------- choosing

LAYOUTS = {
    "llama": Layout("llama", "LlamaForCausalLM",
                    (NormType.rmsnorm, PositionType.rotary, MLPType.swiglu),
                    llama_to_hf, llama_from_hf, llama_config, llama_model_config),
    "gpt2": Layout("gpt2", "GPT2LMHeadModel",
                   (NormType.layernorm, PositionType.learned, MLPType.gelu),
                   gpt2_to_hf, gpt2_from_hf, gpt2_config, gpt2_model_config),
}


def supported() -> str:
    return "; ".join(f"{lay.name} ({'+'.join(map(str, lay.variants))})"
                     for lay in LAYOUTS.values())


def layout_for(cfg: ModelConfig) -> Layout:
    """The layout that computes exactly what ``cfg``'s model computes, or a LayoutError."""
    variant = (cfg.norm, cfg.position, cfg.mlp)
    for lay in LAYOUTS.values():
        if lay.variants == variant:
            if lay.name == "gpt2" and cfg.kv_heads != cfg.n_heads:
                raise LayoutError(f"gpt2 layout has no grouped-query attention, got "
                                  f"n_kv_heads={cfg.kv_heads} for n_heads={cfg.n_heads}; "
                                  "use the llama layout (RMSNorm + rotary + SwiGLU)")
            if lay.name == "gpt2" and cfg.attn_dim != cfg.d_model:
                raise LayoutError(f"gpt2 layout needs n_heads * d_head == d_model, got "
                                  f"{cfg.n_heads} * {cfg.head_dim} != {cfg.d_model}")
            return lay
    extra = " (Transformer-XL relative attention)" if cfg.position == PositionType.relative else ""
    raise LayoutError(f"model variant norm={cfg.norm} position={cfg.position}{extra} "
                      f"mlp={cfg.mlp} has no exact Hugging Face equivalent; supported: "
                      f"{supported()}")


def layout_of_hf(hf: dict, where: str) -> Layout:
    """The layout of an HF ``config.json`` (by ``model_type``)."""
    kind = hf.get("model_type")
    if kind not in LAYOUTS:
        raise LayoutError(f"{where}: model_type={kind!r} is not supported; supported: "
                          f"{', '.join(LAYOUTS)}")
    return LAYOUTS[kind]


# ----------------------------------------------------------------------------- helpers


def _field(hf: dict, key: str) -> int:
    value = hf.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise LayoutError(f"{key} must be a positive integer, got {value!r}")
    return value


def _our_names(cfg: ModelConfig) -> list[str]:
    """Our parameter names for ``cfg`` (from a model built on meta: no memory, no init)."""
    from scalinglab.model.transformer import Transformer

    with torch.device("meta"):
        model = Transformer(cfg)
    names = list(model.state_dict())
    return [n for n in names if not (cfg.tie_embeddings and n == "output.weight")]


def _get(state: State, hf_name: str, ours: str) -> torch.Tensor:
    if hf_name not in state:
        raise LayoutError(f"checkpoint has no tensor {hf_name!r} (needed for {ours})")
    return state[hf_name]


def _rename_back(state: State, names: dict[str, str], fix) -> State:
    return {ours: fix(ours, _get(state, hf_name, ours)) for hf_name, ours in names.items()}
