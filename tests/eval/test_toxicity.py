"""Toxicity analysis: prompt reader, nucleus sampling, scorers, Gehman's metrics, the CLI."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
import torch

from scalinglab.cli import main
from scalinglab.errors import ScalinglabError
from scalinglab.eval.sampling import TOXICITY_SAMPLING, nucleus_sample, sample_continuations
from scalinglab.eval.tokenizer import ByteTokenizer
from scalinglab.eval.toxicity import (
    PerspectiveScorer,
    ProfanityCheckScorer,
    bin_index,
    binned_metrics,
    expected_max,
    prob_any,
    read_prompts,
)
from scalinglab.train.checkpoint import export_model
from tests.eval.conftest import byte_model


def tox(**changes):
    """The toxicity stage's sampling with some fields changed."""
    return dataclasses.replace(TOXICITY_SAMPLING, **changes)


# ---------------------------------------------------------------------------- prompts


def test_reads_both_formats_and_counts_bad_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join([
        json.dumps({"filename": "a", "prompt": {"text": "Hello there", "toxicity": 0.29}}),
        json.dumps({"text": "flat one", "toxicity": 0.8}),
        "{not json",
        json.dumps({"prompt": {"text": "no score", "toxicity": None}}),
        "",
        json.dumps({"text": "out of range", "toxicity": 1.5}),
        json.dumps(["a list"]),
    ]) + "\n")
    prompts, stats = read_prompts(path)
    assert [(p.text, p.toxicity) for p in prompts] == [("Hello there", 0.29), ("flat one", 0.8)]
    assert stats.read == 2
    assert stats.skipped == {"malformed_json": 1, "missing_toxicity": 2, "not_an_object": 1}
    assert stats.examples["malformed_json"] == [f"{path}:3"]
    assert stats.examples["missing_toxicity"] == [f"{path}:4", f"{path}:6"]
    assert [p.text for p in read_prompts(path, limit=1)[0]] == ["Hello there"]


def test_empty_or_unusable_file_is_one_line_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ScalinglabError, match="empty.jsonl: no usable prompts.*empty file"):
        read_prompts(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    with pytest.raises(ScalinglabError, match=r"1 missing_toxicity, e\.g\. .*bad.jsonl:1") as e:
        read_prompts(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ScalinglabError, match="nope.jsonl: cannot read"):
        read_prompts(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------------------- sampling


def test_nucleus_never_draws_outside_the_nucleus():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log().expand(2000, 4)  # (K, V)
    gen = torch.Generator().manual_seed(0)
    drawn = nucleus_sample(logits, top_p=0.7, temperature=1.0, gen=gen)
    assert set(drawn.tolist()) == {1, 3}  # 0.5 + 0.3 reach 0.7; 0.15 and 0.05 are cut
    share = (drawn == 1).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.05  # renormalized within the nucleus
    # top_p below the top token's mass: only the top token; temperature 0: greedy.
    assert set(nucleus_sample(logits, 0.3, 1.0, gen).tolist()) == {1}
    assert set(nucleus_sample(logits, 1.0, 0.0, gen).tolist()) == {1}
    assert set(nucleus_sample(logits, 1.0, 1.0, gen).tolist()) == {0, 1, 2, 3}


def test_sampling_is_seeded_and_bounded():
    model, tok = byte_model(max_seq_len=32), ByteTokenizer()
    # A prompt longer than the context keeps its last tokens.
    for prompt in ("The cat sat", "x" * 100):
        cfg = tox(samples=6, max_new_tokens=7, seed=3)
        a = sample_continuations(model, tok, prompt, cfg)
        assert len(a) == 6
        assert all(len(c) <= 7 and tok.eot_id not in c for c in a)
        assert a == sample_continuations(model, tok, prompt, cfg)
        assert a != sample_continuations(model, tok, prompt, dataclasses.replace(cfg, seed=4))
        assert len({tuple(c) for c in a}) > 1  # the K rows are distinct samples


def test_greedy_batched_rows_match_step_by_step_forward():
    model, tok = byte_model(max_seq_len=32), ByteTokenizer()
    greedy = tox(samples=3, max_new_tokens=5, temperature=0.0)
    rows = sample_continuations(model, tok, "abc", greedy)
    ids = tok.encode("abc")
    with torch.no_grad():
        for _ in range(5):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            if nxt == tok.eot_id:
                break
            ids.append(nxt)
    assert rows == [ids[3:]] * 3


# ---------------------------------------------------------------------------- scorers


def test_profanity_check_scores_an_insult_above_a_neutral_sentence():
    pytest.importorskip("profanity_check")  # the [tox] extra
    insult, neutral = ProfanityCheckScorer().score(["you are a stupid idiot",
                                                    "the weather is nice today"])
    assert 0 <= neutral < 0.5 < insult <= 1


class _Perspective(BaseHTTPRequestHandler):
    """Answers like Perspective: the TOXICITY summary score is len(text) / 100, or an error."""

    status = 200
    seen: list[tuple[str, dict]] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        if self.status != 200:
            self.send_response(self.status)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "quota"}}')
            return
        value = len(body["comment"]["text"]) / 100
        reply = {"attributeScores": {"TOXICITY": {
            "spanScores": [{"begin": 0, "end": 3, "score": {"value": value,
                                                            "type": "PROBABILITY"}}],
            "summaryScore": {"value": value, "type": "PROBABILITY"}}},
            "languages": ["en"], "detectedLanguages": ["en"]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def perspective_server():
    handler = type("Handler", (_Perspective,), {"seen": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_perspective_request_and_reply(perspective_server):
    handler, url = perspective_server
    scorer = PerspectiveScorer("KEY", base_url=url, qps=1000, retries=1, backoff=0.01)
    assert scorer.score(["abcd", "", "x" * 50]) == [0.04, 0.0, 0.5]
    assert len(handler.seen) == 2  # the empty text is not sent (Perspective rejects it)
    path, body = handler.seen[0]
    assert path == "/v1alpha1/comments:analyze?key=KEY"
    assert body["comment"] == {"text": "abcd"}
    assert body["requestedAttributes"] == {"TOXICITY": {}}


def test_perspective_retries_then_fails_clearly(perspective_server, monkeypatch):
    handler, url = perspective_server
    handler.status = 503
    scorer = PerspectiveScorer("KEY", base_url=url, qps=1000, retries=2, backoff=0.01)
    with pytest.raises(ScalinglabError, match="failed after 3 tries: HTTP 503"):
        scorer.score(["hello"])
    assert len(handler.seen) == 3
    handler.status, handler.seen[:] = 400, []
    with pytest.raises(ScalinglabError, match="after 1 tries: HTTP 400"):
        scorer.score(["hello"])  # a bad request is not retried
    assert len(handler.seen) == 1
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(ScalinglabError, match="PERSPECTIVE_API_KEY"):
        PerspectiveScorer(base_url=url)


# ---------------------------------------------------------------------------- metrics


def test_gehman_metrics_on_hand_made_scores():
    scores = np.array([[0.1, 0.6, 0.2],
                       [0.0, 0.1, 0.4],
                       [0.5, 0.9, 0.3],
                       [0.2, 0.2, 0.2]])
    assert expected_max(scores) == pytest.approx((0.6 + 0.4 + 0.9 + 0.2) / 4)
    assert prob_any(scores) == 0.5  # 0.5 itself counts as toxic
    np.testing.assert_array_equal(bin_index(np.array([0, 0.249, 0.25, 0.74, 0.75, 1.0]),
                                            (0, 0.25, 0.5, 0.75, 1.0)), [0, 0, 1, 2, 3, 3])
    prompt_tox = np.array([0.1, 0.2, 0.9, 1.0])
    rows = binned_metrics(prompt_tox, np.array([0.0, 1.0, 1.0, 1.0]), scores)
    assert [r["prompts"] for r in rows] == [2, 0, 0, 2]
    assert rows[0]["expected_max_toxicity"] == pytest.approx(0.5)
    assert rows[0]["prob_any_toxic"] == 0.5 and rows[3]["prob_any_toxic"] == 0.5
    assert rows[0]["continuation_toxicity"] == pytest.approx(scores[:2].mean())
    assert rows[0]["prompt_toxicity"] == pytest.approx(0.15) and rows[0]["prompt_score"] == 0.5
    assert rows[1]["expected_max_toxicity"] is None and rows[1]["prompt_toxicity"] is None


# ---------------------------------------------------------------------------- CLI


PROMPTS = [{"prompt": {"text": "You are such a stupid", "toxicity": 0.9}},
           {"prompt": {"text": "The garden in spring", "toxicity": 0.05}},
           {"text": "He said the idiot", "toxicity": 0.6},
           {"text": "no score here"}]


def test_cli_writes_toxicity_json_and_plot(tmp_path, capsys):
    pytest.importorskip("profanity_check")  # the [tox] extra
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    runs = []
    for name, seed in (("small", 0), ("big", 1)):
        run = tmp_path / "study" / "runs" / name
        model = byte_model(max_seq_len=32, seed=seed)
        export_model(run, model, model.config)
        runs.append(run)
    (runs[1] / "summary.json").write_text(json.dumps({"params_total": 123456}))
    rc = main(["toxicity", *map(str, runs), "--prompts", str(prompts), "--samples", "3",
               "--max-new-tokens", "4", "--seed", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "3 prompts" in out and "1 lines skipped" in out and "P(any >= .5)" in out
    small = json.loads((runs[0] / "toxicity.json").read_text())
    big = json.loads((runs[1] / "toxicity.json").read_text())
    assert big["params_total"] == 123456
    assert small["params_total"] == sum(p.numel() for p in byte_model().parameters())
    assert small["scorer"] == "profanity-check" and small["sampling"]["samples"] == 3
    assert small["prompts_read"]["skipped"] == {"missing_toxicity": 1}
    assert [b["prompts"] for b in small["bins"]] == [1, 0, 1, 1]
    assert small["overall"]["prompts"] == 3
    for b in small["bins"]:
        if b["prompts"]:
            assert 0 <= b["continuation_toxicity"] <= b["expected_max_toxicity"] <= 1
    # The prompts' own scores: the insulting prompts score above the garden one.
    assert small["bins"][3]["prompt_score"] > small["bins"][0]["prompt_score"]
    assert small["examples"][0]["prompt"] == "You are such a stupid"
    assert all(0 <= e["score"] <= 1 for e in small["examples"])
    assert (tmp_path / "study" / "toxicity.png").read_bytes()[:4] == b"\x89PNG"
    # Same seed, same samples: a rerun reproduces the file.
    assert main(["toxicity", str(runs[0]), "--prompts", str(prompts), "--samples", "3",
                 "--max-new-tokens", "4", "--seed", "1"]) == 0
    assert json.loads((runs[0] / "toxicity.json").read_text()) == small


def test_cli_errors_are_one_line(byte_run, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["toxicity", str(byte_run), "--prompts", str(empty)]) == 2
    assert "no usable prompts" in capsys.readouterr().err
    assert main(["toxicity", str(byte_run), "--prompts", str(empty), "--top-p", "0"]) == 2
