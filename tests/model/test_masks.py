"""Document masking: no attention across end-of-text, checked against the plain forward of
each document alone."""

from __future__ import annotations

import pytest
import torch

from scalinglab.model.config import ModelConfig, PositionType
from scalinglab.model.masks import document_mask
from scalinglab.model.transformer import build_model

EOT = 0


def model_for(position: str, n_kv_heads: int | None = None):
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=40,
                      max_seq_len=24, position=position)
    model = build_model(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-zero biases, u and v: every term of attention takes part
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def test_mask_and_positions_by_hand():
    tokens = torch.tensor([[5, 6, EOT, 7, 8, 9, EOT, 3]])
    m = document_mask(tokens, EOT)
    assert m.positions.tolist() == [[0, 1, 0, 1, 2, 3, 0, 1]]
    docs = [0, 0, 1, 1, 1, 1, 2, 2]  # the end-of-text token opens the next document
    expected = [[j <= i and docs[i] == docs[j] for j in range(8)] for i in range(8)]
    assert m.allowed[0].tolist() == expected


@pytest.mark.parametrize("position,n_kv_heads", [
    (p, None) for p in PositionType] + [("rotary", 2), ("learned", 1)])
def test_document_two_is_independent_of_document_one(position, n_kv_heads):
    model = model_for(position, n_kv_heads)
    gen = torch.Generator().manual_seed(0)
    doc1 = torch.randint(1, 40, (2, 9), generator=gen)
    doc2 = torch.randint(1, 40, (2, 6), generator=gen)
    eot = torch.full((2, 1), EOT)
    packed = torch.cat([doc1, eot, doc2], dim=1)  # (2, 16): doc 2 starts at index 9
    with torch.no_grad():
        logits = model(packed, document_mask(packed, EOT))
        other = torch.cat([(doc1 + 7) % 39 + 1, eot, doc2], dim=1)  # doc 1's tokens changed
        changed = model(other, document_mask(other, EOT))
        alone = model(torch.cat([eot, doc2], dim=1))  # doc 2 fed alone after end-of-text
        plain = model(packed)
    torch.testing.assert_close(logits[:, 9:], changed[:, 9:], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits[:, 9:], alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits[:, :9], plain[:, :9], rtol=1e-4, atol=1e-4)
    assert (logits[:, :9] - changed[:, :9]).abs().max() > 1e-3  # doc 1 itself did change
    assert (plain[:, 9:] - logits[:, 9:]).abs().max() > 1e-3  # without the mask doc 2 sees doc 1


def test_gradients_do_not_cross_documents():
    model = model_for("rotary", 2)
    packed = torch.tensor([[3, 4, 5, EOT, 6, 7, 8]])
    h = model.tok_embeddings(packed).detach().requires_grad_(True)
    model.tok_embeddings = None  # feed embeddings directly, to differentiate by them
    out = model(h, document_mask(packed, EOT))
    out[0, 4:].sum().backward()  # the loss of document 2 only
    assert h.grad[0, :3].abs().max() == 0  # nothing flows back into document 1
    assert h.grad[0, 3:].abs().max() > 0
