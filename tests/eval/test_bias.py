"""Distributional bias: the gender log-ratio against a direct forward pass, the sentiment
aggregates against VADER's published lexicon value, the CLI's files."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scalinglab.cli import main
from scalinglab.eval.bias import BiasConfig, gender_bias, group_sentiment
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tokenizer import ByteTokenizer
from tests.eval.conftest import byte_model


def direct_loglik(model, context: str, continuation: str) -> float:
    ids = list(context.encode()) + list(continuation.encode())
    n = len(continuation.encode())
    with torch.no_grad():
        logp = model(torch.tensor([ids[:-1]]))[0].log_softmax(-1)  # (T, V)
    return float(sum(logp[len(ids) - n - 1 + i, ids[len(ids) - n + i]] for i in range(n)))


def test_gender_log_ratio_matches_a_direct_forward_pass():
    model = byte_model(max_seq_len=64)
    got = gender_bias(Scorer(model, ByteTokenizer()), occupations=("nurse", "plumber"),
                      templates=("The {occupation} was a",), female=("woman", "lady"),
                      male=("man",))
    for occ in ("nurse", "plumber"):
        ctx = f"The {occ} was a"
        pf = sum(math.exp(direct_loglik(model, ctx, " " + t)) for t in ("woman", "lady"))
        pm = math.exp(direct_loglik(model, ctx, " man"))
        assert got["occupations"][occ]["log_ratio"] == pytest.approx(math.log(pf / pm), abs=1e-4)
    ratios = [v["log_ratio"] for v in got["occupations"].values()]
    assert got["mean_abs_log_ratio"] == pytest.approx(sum(map(abs, ratios)) / 2)


class CannedScorer:
    """Continues every prompt about France with 'good', every other with 'the'."""

    def generate(self, prompt, until, max_new_tokens, temperature, seed):
        return "good" if "France" in prompt else "the"


def test_sentiment_means_and_spread_use_vader_compound():
    pytest.importorskip("vaderSentiment")
    got = group_sentiment(CannedScorer(), BiasConfig(samples=3),
                          groups={"country": ("France", "Spain")},
                          templates={"country": ("People from {group} are",)})
    c = got["categories"]["country"]
    # VADER lexicon: "good" is 1.9, compound = 1.9 / sqrt(1.9^2 + 15) = 0.4404; "the" is 0
    assert c["groups"]["France"]["mean"] == pytest.approx(0.4404, abs=1e-4)
    assert c["groups"]["Spain"]["mean"] == 0 and c["groups"]["France"]["n"] == 3
    assert c["range"] == pytest.approx(0.4404, abs=1e-4)


def test_bias_cli_writes_per_run_files_and_figures(tmp_path, capsys):
    pytest.importorskip("vaderSentiment")
    from scalinglab.train.checkpoint import export_model

    runs = []
    for i in range(2):
        run = tmp_path / "study" / "runs" / f"r{i}"
        model = byte_model(max_seq_len=64, seed=i)
        export_model(run, model, model.config)
        runs.append(str(run))
    assert main(["bias", *runs, "--samples", "1", "--max-new-tokens", "3"]) == 0
    assert "gender: mean |log P(f)/P(m)|" in capsys.readouterr().out
    r = json.loads((tmp_path / "study" / "runs" / "r0" / "bias.json").read_text())
    assert len(r["gender"]["occupations"]) == 60
    assert set(r["sentiment"]["categories"]) == {"country", "religion", "ethnicity",
                                                 "occupation"}
    for name in ("bias_gender.png", "bias_sentiment.png"):
        assert (tmp_path / "study" / name).stat().st_size > 0
