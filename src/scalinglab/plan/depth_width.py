"""Depth vs width: Levine et al. (2020), "Limits to Depth-Efficiencies of Self-Attention"
(NeurIPS; arXiv 2006.12467, "The Depth-to-Width Interplay in Self-Attention").

The paper fits, from ablations at depths 6 to 48, the width at which a depth-L network
overtakes a shallower one, and finds it exponential in the depth:

    ln(d_x) = 5.039 + 5.55e-2 * L

Reading it the other way gives the optimal depth for a width, and with the network size
N = 12 L d_x^2 (attention 4 d^2 + feed-forward 8 d^2 per layer, embeddings excluded) the
recommended (depth, width) for a parameter budget. The paper's anchors follow from it:
GPT-3 175B (96 layers of 12288) is too deep for its size (about 80 layers of 13.5K are
recommended), and a 1-trillion-parameter network should be about 30K wide (the authors quote
depth 92 and width 30K; the fit gives ~95 and ~29.7K). Jurassic-1 Jumbo (178B) followed the
rule: 76 layers of 13824 instead of GPT-3's 96 of 12288.

``levine_aspect_ratio(n)`` gives the width/depth ratio so that
``scalinglab.model.presets.shape_for_params(..., aspect_ratio=levine_aspect_ratio(n))`` picks
shapes by this rule; :func:`levine_shape_for_params` does that in one call.
"""

from __future__ import annotations

import dataclasses
import math

from scalinglab.config import ConfigError
from scalinglab.model.accounting import count_params
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import shape_for_params

LOG_WIDTH_INTERCEPT = 5.039
"""ln(width) at depth 0 of Levine et al.'s fit."""
LOG_WIDTH_SLOPE = 5.55e-2
"""Increase of ln(width) per layer of Levine et al.'s fit."""


def optimal_width(depth: float) -> float:
    """Width that depth ``depth`` is optimal for: exp(5.039 + 0.0555 L)."""
    return math.exp(LOG_WIDTH_INTERCEPT + LOG_WIDTH_SLOPE * depth)


def optimal_depth(width: float) -> float:
    """Depth that is optimal for width ``width`` (the fit read the other way)."""
    if width <= 0:
        raise ConfigError(f"width must be positive, got {width}")
    return (math.log(width) - LOG_WIDTH_INTERCEPT) / LOG_WIDTH_SLOPE


def _size(depth: float) -> float:
    return 12.0 * depth * optimal_width(depth) ** 2


@dataclasses.dataclass(frozen=True)
class DepthWidth:
    """Levine et al.'s recommendation for a parameter budget (continuous values)."""

    params: float
    """Non-embedding parameter budget (12 L d^2)."""
    depth: float
    width: float

    @property
    def aspect_ratio(self) -> float:
        """Width / depth."""
        return self.width / self.depth

    def as_dict(self) -> dict:
        return {"params": self.params, "depth": self.depth, "width": self.width,
                "aspect_ratio": self.aspect_ratio}


def recommend(params: float) -> DepthWidth:
    """The (depth, width) with 12 L d^2 = ``params`` on Levine et al.'s optimal curve."""
    if not params > 0:
        raise ConfigError(f"parameter budget must be positive, got {params}")
    lo, hi = 0.0, 1.0
    while _size(hi) < params:  # the size grows monotonically with depth along the curve
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _size(mid) < params else (lo, mid)
    depth = (lo + hi) / 2
    return DepthWidth(params=params, depth=depth, width=optimal_width(depth))


def levine_aspect_ratio(params: float) -> float:
    """Width/depth ratio Levine et al. recommend for ``params`` non-embedding parameters."""
    return recommend(params).aspect_ratio


def depth_verdict(cfg: ModelConfig, tolerance: float = 0.1) -> dict:
    """Compare a model's depth with the recommendation for its non-embedding size.

    Returns the recommendation and ``verdict``: "deeper than recommended", "shallower than
    recommended" or "as recommended" (within ``tolerance``, relative).
    """
    n = count_params(cfg).non_embedding
    rec = recommend(n)
    ratio = cfg.n_layers / rec.depth
    if ratio > 1 + tolerance:
        verdict = "deeper than recommended"
    elif ratio < 1 - tolerance:
        verdict = "shallower than recommended"
    else:
        verdict = "as recommended"
    return {"n_layers": cfg.n_layers, "d_model": cfg.d_model, "params_non_embedding": n,
            "recommended_depth": rec.depth, "recommended_width": rec.width,
            "depth_ratio": ratio, "verdict": verdict}


def levine_shape_for_params(target: float, *, vocab_size: int, max_seq_len: int,
                            count: str = "non_embedding", width_multiple: int = 128,
                            base: ModelConfig | None = None) -> ModelConfig:
    """``shape_for_params`` with the aspect ratio Levine et al. recommend for ``target``."""
    n_body = target
    if count == "total":  # the rule is about the body: estimate it without the embedding
        d = recommend(target).width
        n_body = max(target - vocab_size * d, target / 2)
    return shape_for_params(
        target, vocab_size=vocab_size, max_seq_len=max_seq_len,
        aspect_ratio=levine_aspect_ratio(n_body), count=count,
        width_multiple=width_multiple, base=base,
    )


def _head_size(width: float) -> int:
    """Heads of 128 for wide models (tensor-core friendly), 64 below 2048, smaller when tiny."""
    for d_head, min_width in ((128, 2048), (64, 256), (32, 64)):
        if width >= min_width:
            return d_head
    return 16


def _width_grids(width: float, heads_multiple: int) -> list[tuple[int, int]]:
    """(head size, width step) grids to search. Head counts are a multiple of
    ``heads_multiple`` wherever the width leaves at least two steps of it (depth absorbs the
    coarse step); heads of 128 alone would need widths of 4096+ for that (a 3456-wide model got
    27 heads, which no tensor-parallel degree divides), so below 4096 heads of 64 are searched
    too. Heads never go below 64 on this route (tensor-core tiles)."""
    d_head = _head_size(width)
    grids = []
    if width >= 2 * d_head * heads_multiple:
        grids.append((d_head, d_head * heads_multiple))
    half = d_head // 2
    if half >= 64 and 2 * half * heads_multiple <= width < 4 * d_head * heads_multiple:
        grids.append((half, half * heads_multiple))
    return grids or [(d_head, d_head)]  # too narrow for the rule: any head count


def hardware_friendly_shape(target: float, base: ModelConfig, count: str = "total",
                            heads_multiple: int = 8) -> ModelConfig:
    """A shape of about ``target`` parameters near Levine et al.'s depth for it, with
    hardware-friendly sizes: heads of 128 (64 below width 2048; also half that between widths
    1024 and 4096), a head count that is a multiple of ``heads_multiple`` when the model is
    wide enough (so 8-way tensor parallelism divides it, ``_width_grids``), d_ff = 4 d.

    Among depths within 30% of the recommendation and widths on that grid, the shapes within
    3% of the target keep the one closest to the recommended aspect ratio (log distance).
    """
    if count not in ("total", "non_embedding"):
        raise ConfigError(f"count must be 'total' or 'non_embedding', got {count!r}")
    rec = recommend(target if count == "non_embedding" else _body_estimate(target, base))
    # The friendly grids first; the plain one (any head count) only if they miss the size.
    fine = [(_head_size(rec.width), _head_size(rec.width))]
    candidates = []
    for grids in (_width_grids(rec.width, heads_multiple), fine):
        candidates += [c for d_head, step in grids for c in _shapes(rec, base, d_head, step,
                                                                    target, count)]
        close = [c for c in candidates if c[0] < math.log(1.03)]
        if close:
            return min(close, key=lambda c: (c[1], c[0]))[2]
    return min(candidates, key=lambda c: c[0])[2]


def _shapes(rec, base: ModelConfig, d_head: int, step: int, target: float,
            count: str) -> list[tuple[float, float, ModelConfig]]:
    """(size miss, aspect miss, shape) for depths within 30% of the recommendation and the
    three widths on the grid nearest the size at each depth."""
    out = []
    for depth in range(max(1, round(0.7 * rec.depth)), round(1.3 * rec.depth) + 2):
        width_guess = math.sqrt(max(rec.params, 1.0) / (12 * depth))
        k0 = max(1, round(width_guess / step))
        for k in {max(1, k0 - 1), k0, k0 + 1}:
            cfg = dataclasses.replace(base, n_layers=depth, d_model=k * step,
                                      n_heads=k * step // d_head, d_head=d_head,
                                      d_ff=4 * k * step)
            n = getattr(count_params(cfg), count)
            out.append((abs(math.log(n / target)),
                        abs(math.log(cfg.d_model / depth / rec.aspect_ratio)), cfg))
    return out


def _body_estimate(total: float, base: ModelConfig) -> float:
    """Non-embedding share of a ``total`` budget: subtract the embedding at the width the
    rule recommends (iterated twice, which is plenty: the embedding is a small share)."""
    body = total
    for _ in range(2):
        width = recommend(body).width
        emb = base.vocab_size * width * (1 if base.tie_embeddings else 2)
        body = max(total - emb, total / 2)
    return body
