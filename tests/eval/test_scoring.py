"""The harness core against plain ``Transformer.forward``: packing, truncation, windows."""

from __future__ import annotations

import pytest
import torch

from scalinglab.eval.scoring import Group, Scorer, rolling_windows
from scalinglab.eval.tokenizer import ByteTokenizer
from tests.eval.conftest import byte_model


def naive_loglik(model, context: list[int], cont: list[int]) -> tuple[float, bool]:
    """One request alone: the reference the packed, batched path must reproduce."""
    whole = (context + cont)[-(model.config.max_seq_len + 1):]
    logp = model(torch.tensor([whole[:-1]]))[0].log_softmax(-1)  # (T, V)
    rows = logp[-len(cont):]
    target = torch.tensor(cont)
    ll = rows.gather(-1, target[:, None]).sum().item()
    return ll, bool((rows.argmax(-1) == target).all())


@pytest.mark.parametrize("position,n_kv_heads", [
    ("learned", None), ("rotary", None), ("relative", None),
    ("rotary", 2), ("learned", 1), ("relative", 2),  # grouped-query and multi-query
])
def test_packed_groups_match_one_request_at_a_time(position, n_kv_heads):
    model = byte_model(position, n_kv_heads=n_kv_heads)
    assert model.layers["0"].attention.wk.out_features == (n_kv_heads or 4) * 16
    tok = ByteTokenizer()
    scorer = Scorer(model, tok, batch_tokens=96)  # small: several batches, mixed lengths
    groups = [
        ("The cat sat on the", [" mat", " dog", " very long answer here", " a"]),
        ("Q: 2+2=", [" 4", " 5"]),
        ("", [" empty context"]),
        ("x" * 40, [" overflows the 32-byte window", " short"]),  # truncated
        ("Only one choice:", [" yes"]),
    ]
    got = scorer.loglikelihood_groups(groups)
    for (ctx, conts), results in zip(groups, got, strict=True):
        for cont, (ll, greedy) in zip(conts, results, strict=True):
            g = scorer.encode_group(ctx, [cont])
            ref_ll, ref_greedy = naive_loglik(model, g.context, g.continuations[0])
            assert ll == pytest.approx(ref_ll, abs=1e-4), (position, ctx, cont)
            assert greedy == ref_greedy


def test_choices_differ_and_context_matters():
    scorer = Scorer(byte_model(), ByteTokenizer())
    (a, b), = scorer.loglikelihood_groups([("abc", [" x", " y"])])
    (c,), = scorer.loglikelihood_groups([("zzz", [" x"])])
    assert a[0] != b[0] and a[0] != c[0]


def test_encode_moves_trailing_space_to_continuation():
    g = Scorer(byte_model(), ByteTokenizer()).encode_group("Answer: ", ["yes"])
    assert g.context == list(b"Answer:") and g.continuations == [list(b" yes")]


def test_rolling_windows_predict_every_token_once():
    tokens = list(range(100, 137))
    for context_len in (1, 5, 16):
        windows = rolling_windows(tokens, 0, 16, context_len)
        predicted = [t for _, cont in windows for t in cont]
        assert predicted == tokens
        for ctx, cont in windows:
            assert len(ctx) + len(cont) - 1 <= 16
            if ctx != [0]:
                assert len(ctx) >= context_len  # each prediction sees >= context_len tokens


def test_rolling_windows_match_lm_eval():
    utils = pytest.importorskip("lm_eval.utils", reason="lm_eval is not installed")
    tokens = list(range(1, 50))
    for n, max_len, ctx_len in [(49, 16, 1), (10, 16, 1), (49, 16, 7), (33, 16, 16)]:
        ref = [utils.make_disjoint_window(w) for w in
               utils.get_rolling_token_windows(tokens[:n], 0, max_len, ctx_len)]
        assert rolling_windows(tokens[:n], 0, max_len, ctx_len) == ref


def test_rolling_loglikelihood_is_sum_over_tokens():
    model = byte_model(max_seq_len=16)
    scorer = Scorer(model, ByteTokenizer())
    text = "short"
    (ll,) = scorer.rolling_loglikelihood([text])
    ref, _ = naive_loglik(model, [256], list(text.encode()))
    assert ll == pytest.approx(ref, abs=1e-4)
    long = "a fairly long document that needs several windows of sixteen bytes"
    (ll1,) = scorer.rolling_loglikelihood([long], 1)
    (ll8,) = scorer.rolling_loglikelihood([long], 8)
    assert ll1 < 0 and ll8 < 0 and ll1 != ll8  # more context per prediction, other score


def test_score_groups_keeps_order_and_handles_empty_groups():
    scorer = Scorer(byte_model(), ByteTokenizer(), batch_tokens=40)
    groups = [Group([1, 2, 3], [[4], [5, 6]]), Group([7], []), Group([8] * 20, [[9]])]
    out = scorer.score_groups(groups)
    assert [len(r) for r in out] == [2, 0, 1]
    assert out[0][0][0] == pytest.approx(naive_loglik(scorer.model, [1, 2, 3], [4])[0], abs=1e-4)


def test_generation_greedy_stops_and_seeded_sampling_repeats():
    scorer = Scorer(byte_model(), ByteTokenizer())
    greedy = scorer.generate("Hello", max_new_tokens=12)
    assert greedy == scorer.generate("Hello", max_new_tokens=12)
    assert len(greedy.encode()) <= 12
    stop = greedy[3:5] if len(greedy) >= 5 else None
    if stop:
        cut = scorer.generate("Hello", until=[stop], max_new_tokens=12)
        assert stop not in cut and greedy.startswith(cut)
    s1 = scorer.generate("Hello", max_new_tokens=20, temperature=1.0, seed=1)
    assert s1 == scorer.generate("Hello", max_new_tokens=20, temperature=1.0, seed=1)
    others = {scorer.generate("Hello", max_new_tokens=20, temperature=1.0, seed=s)
              for s in range(2, 6)}
    assert len(others | {s1}) > 1


def test_whitespace_only_context_conditions_on_end_of_text():
    scorer = Scorer(byte_model(), ByteTokenizer())
    g = scorer.encode_group("  ", ["yes"])
    assert g.context == [256] and g.continuations == [list(b"  yes")]
    (res,) = scorer.loglikelihood_groups([("  ", ["yes"])])
    assert res[0][0] == pytest.approx(naive_loglik(scorer.model, [256], list(b"  yes"))[0],
                                      abs=1e-4)


def test_continuation_longer_than_the_context_is_refused():
    from scalinglab.errors import ScalinglabError

    scorer = Scorer(byte_model(max_seq_len=16), ByteTokenizer())
    with pytest.raises(ScalinglabError, match="longer than the model's context"):
        scorer.loglikelihood_groups([("context", [" " + "x" * 20])])


class DoubledLogits(torch.nn.Module):
    """A model whose forward is not hidden_states + output (logits scaled by 2)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config
        for name in ("tok_embeddings", "input_positions", "layers", "norm", "output"):
            setattr(self, name, getattr(inner, name))
        self.hidden_states = inner.hidden_states

    def forward(self, tokens):
        return 2 * self.inner(tokens)


def test_fast_paths_fall_back_to_the_model_forward_when_they_disagree():
    model = DoubledLogits(byte_model())
    with pytest.warns(UserWarning, match="disagrees with Transformer.forward"):
        scorer = Scorer(model, ByteTokenizer())
    assert scorer.plain_forward and not scorer.share_context
    (res,) = scorer.loglikelihood_groups([("abc", [" x", " yz"])])
    for cont, (ll, _) in zip([" x", " yz"], res, strict=True):
        assert ll == pytest.approx(naive_loglik(model, list(b"abc"), list(cont.encode()))[0],
                                   abs=1e-4)


def test_unshared_scoring_agrees_with_shared():
    model = byte_model("rotary")
    groups = [("The cat sat on the", [" mat", " dog", " a"]), ("Q:", [" 4", " 55"])]
    shared = Scorer(model, ByteTokenizer()).loglikelihood_groups(groups)
    alone = Scorer(model, ByteTokenizer(), share_context=False)
    assert not alone.share_context
    for a, b in zip(shared, alone.loglikelihood_groups(groups), strict=True):
        assert [x[0] for x in a] == pytest.approx([x[0] for x in b], abs=1e-4)
