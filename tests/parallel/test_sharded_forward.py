"""Sharded forward/backward equals the single-process model (principle: compute the full
logits here, rerun sharded under torchrun, ``assert_close`` on the full tensors).

Covers the model variants the training parity runs do not: RMSNorm, rotary positions,
SwiGLU, no biases, untied output; and activation checkpointing under TP + FSDP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model
from scalinglab.testing.distributed import run_distributed_test

VARIANT = ["norm=rmsnorm", "position=rotary", "mlp=swiglu", "bias=false",
           "tie_embeddings=false"]
LAYOUTS = {"dp_tp": {"dp": 2, "tp": 2}, "fsdp_ac": {"fsdp": 4, "activation_checkpoint": True},
           "fsdp_tp_ac": {"fsdp": 2, "tp": 2, "activation_checkpoint": True}}
GRAD = "layers.1.mlp.w3.weight"


def _loss_and_grads(model, forward, tokens):
    logits = forward(tokens)  # (B, T, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1)[:-1], tokens.flatten()[1:])
    loss.backward()
    return logits, loss


def sharded_run(out: str, layouts: dict[str, dict], variant: list[str] = VARIANT) -> None:
    """Worker (every rank): each layout's full logits and one full gradient -> ``out``."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.parallel import loss_parallel

    from scalinglab.layout.config import ParallelConfig
    from scalinglab.parallel.dims import ParallelDims
    from scalinglab.parallel.parallelize import parallelize

    cfg = tiny().merge(variant)
    tokens = torch.load(Path(out) / "tokens.pt")
    for name, layout in layouts.items():
        pcfg = ParallelConfig(**layout)
        dims = ParallelDims.from_config(pcfg, dist.get_world_size())
        pm = parallelize(cfg, pcfg, dims, dims.build_mesh("cpu"), torch.device("cpu"), seed=3,
                         dtype="fp32", compile=False)
        ctx = loss_parallel() if dims.tp > 1 else torch.enable_grad()
        with ctx:
            logits, _ = _loss_and_grads(pm.model, pm.model, tokens)
        full = {n: p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
                for n, p in pm.model.named_parameters()}
        logits = logits.full_tensor() if isinstance(logits, DTensor) else logits
        if dist.get_rank() == 0:
            torch.save({"logits": logits.detach(), "grad": full[GRAD]}, Path(out) / f"{name}.pt")


@pytest.mark.distributed
def test_sharded_logits_and_gradients_match(tmp_path: Path) -> None:
    cfg = tiny().merge(VARIANT)
    tokens = torch.randint(0, cfg.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1))
    torch.save(tokens, tmp_path / "tokens.pt")
    model = build_model(cfg, seed=3)
    logits, _ = _loss_and_grads(model, model, tokens)
    grad = dict(model.named_parameters())[GRAD].grad
    run_distributed_test("tests.parallel.test_sharded_forward:sharded_run", 4, str(tmp_path),
                         LAYOUTS)
    for name in LAYOUTS:
        got = torch.load(tmp_path / f"{name}.pt")
        torch.testing.assert_close(got["logits"], logits, atol=1e-5, rtol=1e-4, msg=name)
        torch.testing.assert_close(got["grad"], grad, atol=1e-6, rtol=1e-4, msg=name)


GQA = [*VARIANT, "n_kv_heads=2"]  # 4 query heads over 2 KV heads: one KV head per TP rank


@pytest.mark.distributed
def test_grouped_query_attention_under_tensor_parallelism(tmp_path: Path) -> None:
    cfg = tiny().merge(GQA)
    tokens = torch.randint(0, cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(2))
    torch.save(tokens, tmp_path / "tokens.pt")
    model = build_model(cfg, seed=3)
    assert model.layers["0"].attention.wk.out_features == 2 * cfg.head_dim
    logits, _ = _loss_and_grads(model, model, tokens)
    grads = dict(model.named_parameters())
    layouts = {"tp": {"tp": 2}}
    run_distributed_test("tests.parallel.test_sharded_forward:sharded_run", 2, str(tmp_path),
                         layouts, GQA)
    got = torch.load(tmp_path / "tp.pt")
    torch.testing.assert_close(got["logits"], logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got["grad"], grads[GRAD].grad, atol=1e-6, rtol=1e-4)


def test_kv_heads_not_divisible_by_tp_is_one_line():
    from scalinglab.config import ConfigError
    from scalinglab.layout.config import ParallelConfig
    from scalinglab.parallel.dims import ParallelDims

    pcfg = ParallelConfig(tp=2)
    dims = ParallelDims.from_config(pcfg, 2)
    with pytest.raises(ConfigError, match=r"^parallel.tp=2 does not divide model.n_kv_heads=1$"):
        dims.validate(tiny().merge(["n_kv_heads=1"]), pcfg, 4, 0, 64)
    dims.validate(tiny().merge(["n_kv_heads=2"]), pcfg, 4, 0, 64)  # divisible: accepted
