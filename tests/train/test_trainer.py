"""The single-process trainer: learning, budgets, accumulation, schedule, run directory."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scalinglab.config import ConfigError
from scalinglab.model.accounting import FlopConvention, count_params, train_flops_per_token
from scalinglab.model.presets import tiny
from scalinglab.train.callbacks import Callback
from scalinglab.train.config import TrainConfig
from scalinglab.train.metrics import read_metrics
from scalinglab.train.optim import lr_at, param_groups
from scalinglab.train.trainer import Trainer, plan_run, train

SEQ = 32
BATCH = 16 * SEQ  # 512 tokens per step


def make_cfg(shards, out, **kw) -> TrainConfig:
    model = tiny().merge({"vocab_size": 64, "max_seq_len": SEQ})
    base = dict(model=model, preset="tiny", data=str(shards), out=str(out), tokens=20 * BATCH,
                batch_tokens=BATCH, lr=3e-3, eval_tokens=1024)
    return TrainConfig(**{**base, **kw})


def test_loss_goes_down(shards, tmp_path):
    summary = train(make_cfg(shards, tmp_path / "run", tokens=60 * BATCH), progress=False)
    rows = read_metrics(tmp_path / "run")
    assert summary["steps"] == 60 and len(rows) == 60
    assert rows[0]["train_loss"] == pytest.approx(math.log(64), abs=0.3)
    assert summary["final_train_loss"] < rows[0]["train_loss"] - 1.0
    assert summary["final_val_loss"] < math.log(64) - 1.0


def test_token_budget_rounds_down_to_whole_steps(shards, tmp_path):
    cfg = make_cfg(shards, tmp_path / "run", tokens=10_000)
    plan = plan_run(cfg)
    assert (plan.steps, plan.tokens) == (10_000 // BATCH, 10_000 // BATCH * BATCH)
    summary = train(cfg, progress=False)
    rows = read_metrics(tmp_path / "run")
    assert summary["tokens"] == plan.tokens == rows[-1]["tokens"]
    assert [r["step"] for r in rows] == list(range(1, plan.steps + 1))


@pytest.mark.parametrize("convention", list(FlopConvention))
def test_flop_budget_converts_by_convention(shards, tmp_path, convention):
    cfg = make_cfg(shards, tmp_path / "run", tokens=0, flops=3e10, flop_convention=convention)
    per_token = train_flops_per_token(cfg.model, convention, SEQ)
    plan = plan_run(cfg)
    assert plan.steps == int(3e10 / per_token) // BATCH
    spent = plan.tokens * per_token
    assert 3e10 - BATCH * per_token < spent <= 3e10  # within one step of the budget


def test_budget_errors(shards, tmp_path):
    with pytest.raises(ConfigError, match="smaller than one step"):
        plan_run(make_cfg(shards, tmp_path, tokens=BATCH - 1))
    with pytest.raises(ConfigError, match="budget"):
        plan_run(make_cfg(shards, tmp_path, tokens=0, flops=0))
    with pytest.raises(ConfigError, match="multiple of seq_len"):
        plan_run(make_cfg(shards, tmp_path, batch_tokens=BATCH + 1))


def _grads_seen_by_optimizer(trainer: Trainer) -> list[list[torch.Tensor]]:
    """Record the gradients every optimizer step is about to apply."""
    seen: list[list[torch.Tensor]] = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append([p.grad.clone() for p in trainer.model.parameters()])
    )
    return seen


def test_gradient_accumulation_matches_full_batch(shards, tmp_path):
    full = Trainer(make_cfg(shards, tmp_path / "a"), callbacks=[])
    accum = Trainer(make_cfg(shards, tmp_path / "b", micro_batch_size=4), callbacks=[])
    assert (full.plan.accum, accum.plan.accum) == (1, 4)
    grads_full, grads_accum = _grads_seen_by_optimizer(full), _grads_seen_by_optimizer(accum)
    for _ in range(3):
        a, b = full.train_step(), accum.train_step()
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    # From the same weights (step 1) the accumulated gradient is the full-batch gradient.
    names = [n for n, _ in full.model.named_parameters()]
    for name, g, h in zip(names, grads_full[0], grads_accum[0], strict=True):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-7, msg=name)
    # Adam turns float noise in near-zero gradients into differences far below one update
    # (lr = 3e-3 per step); the weights agree to within a few percent of one update.
    for (name, p), q in zip(full.model.named_parameters(), accum.model.parameters(),
                            strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-4, msg=name)


def test_schedule_warmup_then_cosine_to_ten_percent(shards, tmp_path):
    cfg = make_cfg(shards, tmp_path, lr=1.0, warmup_fraction=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[-1] == pytest.approx(0.1)  # the cosine ends exactly at the last step
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[10 + 89 // 2] == pytest.approx(0.55, abs=0.02)  # half-way down the cosine
    # The trainer uses this schedule over exactly its planned steps.
    train(make_cfg(shards, tmp_path / "run", lr=1e-3), progress=False)
    logged = [r["lr"] for r in read_metrics(tmp_path / "run")]
    expected = [lr_at(s, 20, make_cfg(shards, tmp_path, lr=1e-3)) for s in range(20)]
    assert logged == pytest.approx(expected)
    assert logged[-1] == pytest.approx(1e-4)


def test_weight_decay_only_on_matrices(shards, tmp_path):
    model_cfg = tiny().merge({"vocab_size": 64, "max_seq_len": SEQ, "position": "relative"})
    trainer = Trainer(make_cfg(shards, tmp_path, model=model_cfg, lr=0.1, weight_decay=0.5),
                      callbacks=[])
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    decay, no_decay = (set(names[id(p)] for p in g["params"])
                       for g in param_groups(trainer.model, 0.5))
    assert "layers.0.attention.wq.weight" in decay and "tok_embeddings.weight" in decay
    assert {"layers.0.attention.wq.bias", "layers.0.attention_norm.weight", "norm.bias",
            "layers.0.attention.positions.u", "layers.0.attention.positions.v"} <= no_decay
    assert decay | no_decay == set(names.values()) and not decay & no_decay
    # With zero gradients, one AdamW step only applies the decay: p <- p (1 - lr wd).
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for p in trainer.model.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    for n, p in trainer.model.named_parameters():
        factor = 1 - 0.1 * 0.5 if n in decay else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor, msg=n)


SUMMARY_KEYS = {"final_train_loss", "final_val_loss", "tokens", "steps", "params_total",
                "params_non_embedding", "params_embedding", "flops_kaplan", "flops_total_6n",
                "flops_chinchilla", "wall_time_s", "status"}
METRIC_KEYS = {"step", "tokens", "flops", "train_loss", "lr", "grad_norm", "tokens_per_s",
               "mfu", "elapsed"}


def test_run_directory_contents(shards, tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg(shards, run, eval_every=5, checkpoint_every=5, keep_checkpoints=2)
    summary = train(cfg, progress=False)
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    assert files == ["checkpoints", "checkpoints/step-00000015.pt",
                     "checkpoints/step-00000020.pt", "config.json", "metrics.jsonl",
                     "model.safetensors", "model_config.json", "summary.json"]
    assert TrainConfig.from_file(run / "config.json") == cfg
    assert json.loads((run / "summary.json").read_text()) == summary
    assert SUMMARY_KEYS <= set(summary)
    assert summary["params_total"] == count_params(cfg.model).total
    assert summary["flops_chinchilla"] == pytest.approx(
        summary["tokens"] * train_flops_per_token(cfg.model, "chinchilla", SEQ))
    rows = read_metrics(run)
    assert all(METRIC_KEYS <= set(r) for r in rows)
    assert [r["step"] for r in rows if "val_loss" in r] == [5, 10, 15, 20]
    assert summary["final_val_loss"] == rows[-1]["val_loss"]


class _Counter(Callback):
    def __init__(self):
        self.steps = 0

    def post_step(self, trainer, metrics):
        self.steps += 1


def test_finished_run_is_skipped(shards, tmp_path):
    cfg = make_cfg(shards, tmp_path / "run")
    first = train(cfg, progress=False)
    counter = _Counter()
    again = Trainer(cfg, callbacks=[counter]).fit()
    assert again == first and counter.steps == 0


def test_changed_config_on_existing_run_is_a_clear_error(shards, tmp_path):
    train(make_cfg(shards, tmp_path / "run"), progress=False)
    with pytest.raises(ConfigError, match=r"config\.json.*lr=0\.003 \(now 0\.002\)"):
        train(make_cfg(shards, tmp_path / "run", lr=2e-3), progress=False)
    with pytest.raises(ConfigError, match=r"model\.n_layers"):
        train(make_cfg(shards, tmp_path / "run", model=tiny().merge(
            {"vocab_size": 64, "max_seq_len": SEQ, "n_layers": 3})), progress=False)


def test_shard_vocabulary_larger_than_model_is_an_error(shards, tmp_path):
    model = tiny().merge({"vocab_size": 32, "max_seq_len": SEQ})
    with pytest.raises(ConfigError, match="vocab"):
        Trainer(make_cfg(shards, tmp_path, model=model))


def test_bf16_autocast_on_cpu(shards, tmp_path):
    trainer = Trainer(make_cfg(shards, tmp_path / "run", dtype="bf16"), callbacks=[])
    with trainer.autocast:
        logits = trainer.model(torch.zeros(1, 4, dtype=torch.long))
    assert logits.dtype == torch.bfloat16
    losses = [trainer.train_step()["train_loss"] for _ in range(20)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0] - 0.5
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert math.isfinite(trainer.evaluate())


@pytest.mark.slow
def test_compiled_model_trains_like_eager(shards, tmp_path):
    """compile=true (inductor, tens of seconds to compile on CPU) gives the eager losses."""
    eager = Trainer(make_cfg(shards, tmp_path / "eager"), callbacks=[])
    compiled = Trainer(make_cfg(shards, tmp_path / "compiled", compile=True), callbacks=[])
    for _ in range(3):
        a, b = eager.train_step(), compiled.train_step()
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert compiled.evaluate() == pytest.approx(eager.evaluate(), rel=1e-4)


def test_train_api_refuses_a_parallel_layout(shards, tmp_path):
    cfg = TrainConfig(model=tiny().merge({"vocab_size": 64}), data=str(shards),
                      out=str(tmp_path / "run"), tokens=4096, batch_tokens=1024)
    with pytest.raises(ConfigError, match="torchrun"):
        train(cfg.merge(["parallel.fsdp=2"]), progress=False)


def _per_document_loss(model, x: torch.Tensor, y: torch.Tensor, eot: int) -> torch.Tensor:
    """The reference: every document (opened by an end-of-text token) fed alone through the
    plain causal forward, its losses pooled over the batch."""
    losses = []
    for row, target in zip(x, y, strict=True):
        starts = [0] + [i for i in range(1, len(row)) if row[i] == eot] + [len(row)]
        for a, b in zip(starts, starts[1:], strict=False):
            logits = model(row[None, a:b])[0]
            losses.append(torch.nn.functional.cross_entropy(logits, target[a:b],
                                                            reduction="none"))
    return torch.cat(losses).mean()


def test_document_mask_trains_each_document_as_if_alone(shards, tmp_path):
    masked = Trainer(make_cfg(shards, tmp_path / "masked", document_mask=True), callbacks=[])
    plain = Trainer(make_cfg(shards, tmp_path / "plain"), callbacks=[])
    x, y = masked.train_data.batch(0, 4)  # 32-token windows of 20..60-word documents
    eot = masked.train_data.eot_id
    assert (x == eot).any(dim=1).sum() >= 2  # several windows do cross a boundary
    got = masked.forward_backward_step(x, y, 1.0)
    with torch.no_grad():
        expected = _per_document_loss(masked.model, x, y, eot)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert float(plain.forward_backward_step(x, y, 1.0)) != pytest.approx(float(got), rel=1e-5)
    losses = [masked.train_step()["train_loss"] for _ in range(15)]
    assert losses[-1] < losses[0] - 0.5 and math.isfinite(masked.evaluate())


def test_document_mask_with_a_parallel_layout_is_a_clear_error(shards, tmp_path):
    with pytest.raises(ConfigError, match="document_mask=true is not supported with a parallel"):
        make_cfg(shards, tmp_path, document_mask=True).merge(["parallel.tp=2"])


def test_run_written_before_grouped_query_attention_resumes(shards, tmp_path):
    cfg = make_cfg(shards, tmp_path / "run", tokens=2 * BATCH)
    train(cfg, progress=False)
    path = tmp_path / "run" / "config.json"
    old = json.loads(path.read_text())
    del old["model"]["n_kv_heads"], old["document_mask"]
    path.write_text(json.dumps(old))
    (tmp_path / "run" / "summary.json").unlink()
    train(cfg, progress=False)  # the same run: no "different config" error


def _saved_bytes(model, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward during one forward (what checkpointing saves)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return total


@pytest.mark.parametrize("mode", ["selective", "full"])
def test_activation_checkpointing_in_one_process_keeps_losses_and_saves_memory(
        shards, tmp_path, mode):
    """parallel.activation_checkpoint applies without torchrun too (it used to be ignored)."""
    plain = Trainer(make_cfg(shards, tmp_path / "plain"), callbacks=[])
    ckpt = Trainer(make_cfg(shards, tmp_path / mode).merge(
        [f"parallel.activation_checkpoint={mode}"]), callbacks=[])
    x = torch.randint(0, 64, (4, SEQ))
    assert _saved_bytes(ckpt.model, x) < _saved_bytes(plain.model, x)
    for _ in range(3):
        a, b = plain.train_step(), ckpt.train_step()
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
