"""Which keys each query may attend to, beyond plain causality: masks for ``Transformer``.

The model's one attention (``model/transformer.py``) takes an optional ``AttentionMask``:
per-token positions and a boolean (B, T, T) mask, ``allowed[b, i, j]`` = query i may attend to
key j. Two producers use it:

- *document masking* in training (Llama 3's "attention mask that prevents self-attention
  between different documents within the same sequence"): no token attends across an
  end-of-text boundary, and positions restart at each document;
- *prefix sharing* in evaluation (``eval/scoring.py``): one row ``[context | choice 1 |
  choice 2 | ...]`` where each choice sees the context and itself only.

Both are segment masks: causal, and a query sees the keys of its own segment (plus, for
prefix sharing, segment 0). Shapes: B batch, T sequence.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class AttentionMask:
    """Positions and visibility for a batch of rows that are not one plain causal sequence."""

    positions: torch.Tensor
    """(B, T) long: the position of each token (what rotary / learned / relative positions
    see); restarts at each document or branch."""
    allowed: torch.Tensor
    """(B, T, T) bool: ``allowed[b, i, j]`` = query i may attend to key j. Every row allows
    at least its own diagonal, so no softmax is over an empty set."""


def causal_mask(t: int, device: torch.device) -> torch.Tensor:
    """(T, T) bool, lower triangular: query i sees keys 0..i."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()  # (T, T)


def document_mask(tokens: torch.Tensor, eot_id: int) -> AttentionMask:
    """Document masking of packed training rows (documents end with ``eot_id``).

    The end-of-text token *opens* the next document: it and the tokens after it see nothing
    before it, so each document is computed as if it were fed alone after an end-of-text
    token (how ``eval`` conditions an unconditional text), and the last token of a document
    still learns to predict end-of-text from its own document. NOTE: torchtitan's
    ``block_causal`` mask puts the end-of-sequence token in the document it closes instead;
    its data also starts every document with a BOS token, which ours does not have.

    Args:
        tokens: (B, T) token ids.
        eot_id: the end-of-text id of the shards.
    """
    segments = torch.cumsum(tokens == eot_id, dim=1)  # (B, T): documents opened so far
    return AttentionMask(positions=_positions_within(segments),
                         allowed=segment_mask(segments, shared_prefix=False))


def prefix_sharing_mask(positions: torch.Tensor, segments: torch.Tensor) -> AttentionMask:
    """Packed scoring rows: segment 0 is a shared context, segment i > 0 the i-th branch
    after it (padding: any other id, e.g. -1). A branch sees the context and itself.

    Args:
        positions: (B, T) position of each token within context + its branch.
        segments: (B, T) segment id of each token.
    """
    return AttentionMask(positions=positions, allowed=segment_mask(segments, shared_prefix=True))


def segment_mask(segments: torch.Tensor, shared_prefix: bool) -> torch.Tensor:
    """(B, T) segment ids -> (B, T, T) bool: causal, and a query sees its own segment (and
    segment 0 too when ``shared_prefix``)."""
    key, query = segments[:, None, :], segments[:, :, None]  # (B, 1, T), (B, T, 1)
    same = key == query
    if shared_prefix:
        same = same | (key == 0)
    return same & causal_mask(segments.shape[1], segments.device)


def _positions_within(segments: torch.Tensor) -> torch.Tensor:
    """(B, T) segment ids, non-decreasing along T -> each token's index within its segment."""
    t = segments.shape[1]
    index = torch.arange(t, device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    # The index of the latest segment start at or before each token.
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - first
