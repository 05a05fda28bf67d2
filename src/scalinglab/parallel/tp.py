"""Tensor parallelism: the Megatron plan, written as a DTensor ``parallelize_module`` plan.

Inside a block, q/k/v and the first MLP layer(s) are split by columns (each rank owns a slice
of heads / hidden units) and the output projections ``wo`` / ``w2`` by rows, so a block
needs one reduction in the forward pass per sub-layer. With sequence parallelism the
residual stream between those matmuls is split along the sequence (``Shard(1)``) and the
norms run on that slice; the reduction becomes a reduce-scatter and the matching all-gather
happens at the entry of attention / MLP. The output layer is split by vocabulary and, with
loss parallelism, the cross-entropy runs on the vocab-sharded logits without gathering them.

Grouped-query attention: ``wk`` / ``wv`` are split by columns like ``wq``, so each rank holds
n_heads / tp query heads and n_kv_heads / tp key/value heads, and the rank's query heads are
exactly those its key/value heads serve (consecutive groups). This needs tp to divide
n_kv_heads; otherwise the layout is refused with one line (``check_tp_heads``), as Megatron-LM
does, rather than replicating K/V on every rank (multi-query attention therefore runs without
tensor parallelism, or with tp = 1).
"""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from scalinglab.config import ConfigError
from scalinglab.model.config import MLPType, ModelConfig


def check_tp_heads(cfg: ModelConfig, tp: int) -> None:
    """One-line error unless ``tp`` divides the query and the key/value heads."""
    for name, heads in (("model.n_heads", cfg.n_heads), ("model.n_kv_heads", cfg.kv_heads)):
        if heads % tp:
            raise ConfigError(f"parallel.tp={tp} does not divide {name}={heads}")


def apply_tp(model: nn.Module, tp_mesh: DeviceMesh, loss_parallel: bool) -> None:
    """Shard ``model`` (a Transformer or one pipeline stage of it) over ``tp_mesh`` in place.

    Args:
        model: Transformer whose absent parts (pipeline stages) are None.
        tp_mesh: the 1-D ``tp`` axis of the mesh.
        loss_parallel: keep the logits vocab-sharded (DTensor ``Shard(-1)``) for
            ``torch.distributed.tensor.parallel.loss_parallel``; otherwise gather them.
    """
    cfg = model.config
    check_tp_heads(cfg, tp_mesh.size())
    plan: dict[str, object] = {}
    if model.tok_embeddings is not None:
        # Vocab-sharded embedding; its output is reduce-scattered along the sequence.
        plan["tok_embeddings"] = RowwiseParallel(input_layouts=Replicate(),
                                                 output_layouts=Shard(1))
        if any(True for _ in model.input_positions.parameters()):
            # Learned positions are added to the sequence slice each rank holds.
            plan["input_positions"] = SequenceParallel(use_local_output=True)
    if model.norm is not None:
        plan["norm"] = SequenceParallel()
    if model.output is not None:
        plan["output"] = ColwiseParallel(
            input_layouts=Shard(1),
            output_layouts=Shard(-1) if loss_parallel else Replicate(),
            use_local_output=not loss_parallel,
        )
    parallelize_module(model, tp_mesh, plan)
    if cfg.tie_embeddings and model.tok_embeddings is not None and model.output is not None:
        # Both weights are (V, D) split by rows (Shard(0)): re-tie the two DTensor parameters.
        model.output.weight = model.tok_embeddings.weight
    for block in model.layers.values():
        parallelize_module(block, tp_mesh, _block_plan(cfg.mlp))


def _block_plan(mlp: MLPType) -> dict[str, object]:
    """Colwise q/k/v/w1/w3, rowwise wo/w2, sequence-parallel norms."""
    gather = PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),))
    plan: dict[str, object] = {
        "attention_norm": SequenceParallel(),
        "attention": gather,
        "attention.wq": ColwiseParallel(),
        "attention.wk": ColwiseParallel(),
        "attention.wv": ColwiseParallel(),
        "attention.wo": RowwiseParallel(output_layouts=Shard(1)),
        "mlp_norm": SequenceParallel(),
        "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
        "mlp.w1": ColwiseParallel(),
        "mlp.w2": RowwiseParallel(output_layouts=Shard(1)),
    }
    if mlp == MLPType.swiglu:
        plan["mlp.w3"] = ColwiseParallel()
    return plan
