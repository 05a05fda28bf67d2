"""ModelConfig: the shape and variants of a decoder-only transformer, as plain data."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from scalinglab.config import Config, ConfigError


class NormType(enum.StrEnum):
    """Normalisation layer: GPT-3 / MT-NLG use LayerNorm, Gopher / Chinchilla RMSNorm."""

    layernorm = "layernorm"
    rmsnorm = "rmsnorm"


class PositionType(enum.StrEnum):
    """Position information.

    ``learned``: absolute embeddings added to the input (GPT-3).
    ``rotary``: rotary embeddings applied to queries and keys (RoPE).
    ``relative``: Transformer-XL relative attention (Dai et al. 2019) as Gopher / Chinchilla use
    it: every layer projects sinusoidal relative encodings with its own d_model x (heads*d_head)
    matrix and adds the content / position biases u and v to the queries.
    """

    learned = "learned"
    rotary = "rotary"
    relative = "relative"


class MLPType(enum.StrEnum):
    """Feed-forward block: GELU (two matrices) or SwiGLU (three matrices)."""

    gelu = "gelu"
    swiglu = "swiglu"


@dataclasses.dataclass
class ModelConfig(Config):
    """Shape and variants of a decoder-only transformer."""

    n_layers: int = 2
    """Number of transformer blocks."""
    d_model: int = 64
    """Width of the residual stream."""
    n_heads: int = 4
    """Number of attention (query) heads."""
    n_kv_heads: int | None = None
    """Number of key/value heads (grouped-query attention, Ainslie et al. 2023): each serves
    ``n_heads / n_kv_heads`` consecutive query heads. Defaults to n_heads (multi-head
    attention); 1 is multi-query attention (Shazeer 2019). Must divide n_heads."""
    d_head: int | None = None
    """Size of one head; defaults to d_model // n_heads. Kept independent of d_model so that
    published shapes such as GPT-3 13B (d_model 5140, 40 heads of 128) are representable."""
    d_ff: int | None = None
    """Hidden size of the feed-forward block; defaults to 4 * d_model."""
    vocab_size: int = 256
    """Number of token ids (embedding rows)."""
    max_seq_len: int = 128
    """Longest context the model is built for (size of learned position tables)."""
    norm: NormType = NormType.layernorm
    """Normalisation layer type."""
    position: PositionType = PositionType.learned
    """Position scheme."""
    mlp: MLPType = MLPType.gelu
    """Feed-forward block type."""
    tie_embeddings: bool = True
    """Share the input embedding matrix with the output projection."""
    bias: bool = True
    """Biases in linear layers and LayerNorm (GPT-3 style); False for Gopher-style models."""
    norm_eps: float = 1e-5
    """Epsilon of the normalisation layers."""
    rope_theta: float = 10000.0
    """Base of the rotary frequencies (only used with position=rotary)."""

    def __post_init__(self) -> None:
        if self.d_head is None:
            if self.n_heads <= 0 or self.d_model % self.n_heads:
                raise ConfigError(
                    f"ModelConfig: d_model={self.d_model} is not divisible by "
                    f"n_heads={self.n_heads}; set d_head explicitly"
                )
            self.d_head = self.d_model // self.n_heads
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        self.validate()

    def validate(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff",
                     "vocab_size", "max_seq_len"):
            value = getattr(self, name)
            if name == "n_kv_heads" and value is None:
                continue  # as many as n_heads, whatever n_heads becomes (dataclasses.replace)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.n_heads % self.kv_heads:
            raise ConfigError(f"ModelConfig.n_kv_heads={self.kv_heads} must divide "
                              f"n_heads={self.n_heads} (each KV head serves a group of "
                              "query heads)")
        if self.position == PositionType.rotary and self.head_dim % 2:
            raise ConfigError(f"ModelConfig.d_head={self.head_dim} must be even for rotary")

    def merge(self, overrides: list[str] | dict[str, Any]) -> ModelConfig:
        """``Config.merge``, with d_head and d_ff following a changed width or head count
        (see ``rederived_keys``)."""
        if isinstance(overrides, dict):
            reset = rederived_keys(self, set(overrides), prefix="")
            return super().merge({**overrides, **dict.fromkeys(reset)})
        keys = {o.split("=", 1)[0].strip() for o in overrides}
        return super().merge([*overrides, *(f"{k}=null" for k in
                                            rederived_keys(self, keys, prefix=""))])

    @property
    def head_dim(self) -> int:
        assert self.d_head is not None
        return self.d_head

    @property
    def ff_dim(self) -> int:
        assert self.d_ff is not None
        return self.d_ff

    @property
    def kv_heads(self) -> int:
        """Key/value heads; ``n_kv_heads=None`` (multi-head attention) is left unresolved so
        that a shape derived with ``dataclasses.replace(n_heads=...)`` stays multi-head."""
        return self.n_kv_heads or self.n_heads

    @property
    def attn_dim(self) -> int:
        """Width of the concatenated query heads (n_heads * d_head)."""
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the concatenated key (or value) heads (n_kv_heads * d_head)."""
        return self.kv_heads * self.head_dim


def rederived_keys(model: ModelConfig, keys: set[str], prefix: str = "model.") -> list[str]:
    """The derived sizes to reset (to None, derived again) after overriding ``keys``.

    A preset's ``d_head`` (d_model / n_heads) and ``d_ff`` (4 d_model) are stored resolved
    (``n_kv_heads`` too when a file spells it out); when ``d_model`` or ``n_heads`` is
    overridden (keys named with ``prefix``) and they were the derived values, they are
    derived again, so ``n_heads=3`` on a width-64 model is reported as inconsistent instead
    of silently keeping heads of 16 (a 48-wide attention), and ``n_heads=8`` on a multi-head
    model stays multi-head. A grouped model's ``n_kv_heads`` is kept (``n_heads=16`` on
    Llama 3 8B keeps its 8 KV heads).
    """
    extra = []
    if f"{prefix}n_heads" in keys and f"{prefix}n_kv_heads" not in keys and \
            model.kv_heads == model.n_heads:
        extra.append(f"{prefix}n_kv_heads")
    shape_changed = keys & {f"{prefix}d_model", f"{prefix}n_heads"}
    if shape_changed and f"{prefix}d_head" not in keys and \
            model.head_dim * model.n_heads == model.d_model:
        extra.append(f"{prefix}d_head")
    if f"{prefix}d_model" in keys and f"{prefix}d_ff" not in keys and \
            model.ff_dim == 4 * model.d_model:
        extra.append(f"{prefix}d_ff")
    return extra
