"""Parameter and FLOP accounting: pure functions of a ModelConfig (no torch).

The planner uses these for 530B-parameter models, so nothing here allocates tensors. The
parameter count mirrors ``model/transformer.py`` exactly (a test checks it against ``numel``).

FLOP conventions (training = forward + backward):

- ``kaplan``: 6 N per token with N the non-embedding parameters (Kaplan et al. 2020).
- ``total_6n``: 6 N per token with N all parameters (how Chinchilla's tables quote C = 6ND).
- ``chinchilla``: the Chinchilla paper's Appendix F count: embeddings, q/k/v, attention logits,
  softmax, attention over values, output projection, dense block and final logits, with
  backward = 2 x forward. Variant layers are counted as built: SwiGLU has three matrices,
  relative attention adds its per-layer position projection and position logits, and
  grouped-query attention's k/v projections are n_kv_heads / n_heads of the query's (its
  attention logits and value products are per query head, so they do not shrink).
"""

from __future__ import annotations

import dataclasses
import enum

from scalinglab.model.config import MLPType, ModelConfig, NormType, PositionType


class FlopConvention(enum.StrEnum):
    """How training compute C is counted from a model and a token count."""

    kaplan = "kaplan"
    total_6n = "total_6n"
    chinchilla = "chinchilla"


def law_param_count(convention: str) -> str:
    """The parameter count N of C = k N D and of the fitted laws under ``convention``:
    ``non_embedding`` under kaplan (Kaplan et al.), ``total`` otherwise (Chinchilla)."""
    return "non_embedding" if convention == FlopConvention.kaplan else "total"


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Parameters of a model split the way scaling-law papers split them."""

    embedding: int
    """Token embedding, learned position table and (when untied) the output projection."""
    non_embedding: int
    """Everything else: attention, feed-forward, norms, relative-position projections."""

    @property
    def total(self) -> int:
        return self.embedding + self.non_embedding


def norm_params(cfg: ModelConfig) -> int:
    """Parameters of one normalisation layer."""
    with_bias = cfg.norm == NormType.layernorm and cfg.bias
    return cfg.d_model * (2 if with_bias else 1)


def attention_params(cfg: ModelConfig) -> int:
    """Parameters of one attention block (q, k, v, output; relative-position extras).
    q and the output are d_model x (n_heads d_head); k and v d_model x (n_kv_heads d_head)."""
    d, a, kv = cfg.d_model, cfg.attn_dim, cfg.kv_dim
    n = 2 * d * a + 2 * d * kv + (a + 2 * kv + d if cfg.bias else 0)
    if cfg.position == PositionType.relative:
        n += d * a  # per-layer projection of the sinusoidal relative encodings
        n += 2 * a  # the content and position biases u and v
    return n


def mlp_params(cfg: ModelConfig) -> int:
    """Parameters of one feed-forward block."""
    d, f = cfg.d_model, cfg.ff_dim
    if cfg.mlp == MLPType.swiglu:
        return 3 * d * f + (2 * f + d if cfg.bias else 0)
    return 2 * d * f + (f + d if cfg.bias else 0)


def layer_params(cfg: ModelConfig) -> int:
    """Parameters of one transformer block (two norms, attention, feed-forward)."""
    return 2 * norm_params(cfg) + attention_params(cfg) + mlp_params(cfg)


def count_params(cfg: ModelConfig) -> ParamCount:
    """Embedding and non-embedding parameter counts of the model ``cfg`` describes."""
    embedding = cfg.vocab_size * cfg.d_model
    if cfg.position == PositionType.learned:
        embedding += cfg.max_seq_len * cfg.d_model
    if not cfg.tie_embeddings:
        embedding += cfg.vocab_size * cfg.d_model
    non_embedding = cfg.n_layers * layer_params(cfg) + norm_params(cfg)
    return ParamCount(embedding=embedding, non_embedding=non_embedding)


def forward_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Forward FLOPs per token by the Chinchilla paper's Appendix F (see module docstring)."""
    t = seq_len or cfg.max_seq_len
    d, a, f, v = cfg.d_model, cfg.attn_dim, cfg.ff_dim, cfg.vocab_size
    embed = 2 * v * d
    qkv = 2 * d * (a + 2 * cfg.kv_dim)
    logits = 2 * t * a
    softmax = 3 * cfg.n_heads * t
    values = 2 * t * a
    out = 2 * a * d
    attention = qkv + logits + softmax + values + out
    if cfg.position == PositionType.relative:
        attention += 2 * d * a + 2 * t * a  # position projection and position logits
    dense = 2 * (3 if cfg.mlp == MLPType.swiglu else 2) * d * f
    final_logits = 2 * d * v
    return float(embed + cfg.n_layers * (attention + dense) + final_logits)


def train_flops_per_token(
    cfg: ModelConfig,
    convention: FlopConvention | str = FlopConvention.chinchilla,
    seq_len: int | None = None,
) -> float:
    """Training FLOPs (forward + backward) per token under ``convention``."""
    convention = FlopConvention(convention)
    params = count_params(cfg)
    if convention == FlopConvention.kaplan:
        return 6.0 * params.non_embedding
    if convention == FlopConvention.total_6n:
        return 6.0 * params.total
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def train_flops(
    cfg: ModelConfig,
    tokens: float,
    convention: FlopConvention | str = FlopConvention.chinchilla,
    seq_len: int | None = None,
) -> float:
    """Training compute C for ``tokens`` tokens under ``convention``."""
    return train_flops_per_token(cfg, convention, seq_len) * tokens


def all_conventions(cfg: ModelConfig, tokens: float, seq_len: int | None = None) -> dict:
    """Training compute under every convention, keyed ``flops_<convention>``."""
    return {f"flops_{c.value}": train_flops(cfg, tokens, c, seq_len) for c in FlopConvention}


def megatron_flops_per_iteration(
    cfg: ModelConfig, batch_size: int, seq_len: int, recompute: bool = False
) -> float:
    """Narayanan et al. (2021) FLOPs per iteration: 72 B s l h^2 (1 + s/6h + V/16lh).

    With full activation recomputation the forward pass runs twice: 96 instead of 72.
    """
    b, s, l, h, v = batch_size, seq_len, cfg.n_layers, cfg.d_model, cfg.vocab_size
    factor = 96 if recompute else 72
    return factor * b * s * l * h * h * (1 + s / (6 * h) + v / (16 * l * h))
