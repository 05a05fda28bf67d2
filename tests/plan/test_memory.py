import pytest

from scalinglab.model.accounting import layer_params
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import get_preset
from scalinglab.plan.hardware import CATALOGUE, get_gpu
from scalinglab.plan.layout import Layout, Recompute
from scalinglab.plan.memory import (
    layer_activation_bytes,
    memory_per_gpu,
    stage_memory,
    training_state_bytes,
)

MTNLG = dict(tp=8, pp=35, dp=8, micro_batch=1, global_batch=1920)


def test_mtnlg_training_state_is_8_5_tb_and_fits_no_single_gpu():
    cfg = get_preset("mtnlg-530b")
    assert training_state_bytes(cfg) / 1e12 == pytest.approx(8.5, rel=0.01)
    for gpu in CATALOGUE.values():
        report = memory_per_gpu(cfg, Layout(), 2048, gpu)
        assert not report.fits
        assert report.worst.model_state == pytest.approx(training_state_bytes(cfg), rel=1e-9)
        assert report.worst.dominant == "optimizer"


@pytest.mark.parametrize("zero", [0, 1])
def test_mtnlg_published_layout_fits_80gb_a100(zero):
    cfg, gpu = get_preset("mtnlg-530b"), get_gpu("a100-80gb")
    layout = Layout(**MTNLG, zero_stage=zero, recompute=Recompute.full)
    report = memory_per_gpu(cfg, layout, 2048, gpu)
    assert report.fits, report.as_dict()
    # 3 of 105 layers / 8-way tensor split, plus the vocab-parallel embedding on stage one;
    # every TP rank holds whole the replicated parts: per layer 2 LayerNorms (2d each) and
    # the wo / w2 biases (d each) = 6d, the learned positions (2048 d), the final norm (2d).
    first, last = report.stages
    d = 20480
    body = 3 * layer_params(cfg) / 8
    assert first.params == pytest.approx(body + 50257 * d / 8 + 3 * 6 * d * 7 / 8 + 2048 * d)
    assert last.params == pytest.approx(body + (50257 + 2) * d / 8 + (3 * 6 + 2) * d * 7 / 8)
    assert body == pytest.approx(530e9 / 280, rel=0.01)
    # ...but without recomputation its activations overflow the GPU.
    no_rc = memory_per_gpu(cfg, Layout(**MTNLG, zero_stage=zero), 2048, gpu)
    assert not no_rc.fits and no_rc.worst.dominant == "activations"


def test_korthikanti_per_layer_activations():
    cfg = ModelConfig(n_layers=4, d_model=1024, n_heads=16, vocab_size=1000, max_seq_len=512)
    s, b, h, a, t = 512, 2, 1024, 16, 4
    base = dict(tp=t, micro_batch=b)
    none = layer_activation_bytes(cfg, Layout(**base), s)
    assert none == pytest.approx(s * b * h * (10 + 24 / t + 5 * a * s / (h * t)))
    sp = layer_activation_bytes(cfg, Layout(**base, sequence_parallel=True), s)
    assert sp == pytest.approx(s * b * h / t * (34 + 5 * a * s / h))
    sel = layer_activation_bytes(cfg, Layout(**base, sequence_parallel=True,
                                             recompute=Recompute.selective), s)
    assert sel == pytest.approx(34 * s * b * h / t)
    full = layer_activation_bytes(cfg, Layout(**base, recompute=Recompute.full), s)
    assert full == 2 * s * b * h
    # no parallelism at all: the paper's s b h (34 + 5 a s / h)
    single = layer_activation_bytes(cfg, Layout(micro_batch=b), s)
    assert single == pytest.approx(s * b * h * (34 + 5 * a * s / h))


def test_zero_stages_shard_optimizer_then_grads_then_weights():
    cfg = get_preset("gpt3-1.3b")
    mems = [stage_memory(cfg, Layout(dp=8, global_batch=8, zero_stage=z), 2048, True, True)
            for z in range(4)]
    assert mems[1].optimizer == pytest.approx(mems[0].optimizer / 8)
    assert mems[2].gradients == pytest.approx(mems[0].gradients / 8)
    assert mems[3].weights == pytest.approx(mems[0].weights / 8)
    assert [m.model_state for m in mems] == sorted((m.model_state for m in mems), reverse=True)


def test_pipeline_first_stage_holds_in_flight_micro_batches_and_embedding():
    cfg = get_preset("gpt3-13b")
    layout = Layout(tp=8, pp=4, dp=1, global_batch=16, recompute=Recompute.selective,
                    sequence_parallel=True)
    first, last = memory_per_gpu(cfg, layout, 2048, get_gpu("a100-80gb")).stages
    assert first.activations > 3 * last.activations  # 4 micro-batches in flight vs 1
    per_layer = layer_activation_bytes(cfg, layout, 2048)
    assert first.activations >= 4 * per_layer * cfg.n_layers / 4
    interleaved = layout.merge({"schedule": "interleaved", "virtual_stages": 2})
    assert stage_memory(cfg, interleaved, 2048, True, False).activations > first.activations


def test_memory_cli_reports_fit_and_dominant(cli_json, cli):
    args = ["plan", "memory", "--model", "mtnlg-530b", "--gpu", "a100-80gb", "tp=8", "pp=35",
            "dp=8", "global_batch=1920", "zero_stage=2", "recompute=full"]
    data = cli_json(*args)
    assert data["fits"] and data["training_state_bytes"] > 8e12
    rc, out, _ = cli(*args)
    assert rc == 0 and "fits in 80 GiB" in out and "8.47 TB" in out


@pytest.mark.parametrize("override,needle", [
    (["pp=36"], "36 pipeline stages (pp=36 x 1 per rank) do not divide model.n_layers=105"),
    (["tp=16"], "tp=16 must divide the 8 GPUs of a node"),
    (["tp=3"], "tp=3"),
    (["dp=7", "global_batch=1920"], "dp x fsdp = 7 does not divide the batch of 1920"),
    (["tp=8", "pp=35", "dp=8", "global_batch=1920", "zero_stage=1"],
     "ZeRO-1 (zero_stage=1, parallel.shard_optimizer) runs only under plain data parallelism"),
    (["pp=35", "global_batch=16"], "16 micro-batches per step is fewer than pp=35"),
    (["bogus=1"], "unknown field"),
])
def test_invalid_layouts_are_one_line_errors(cli, override, needle):
    rc, out, err = cli("plan", "memory", "--model", "mtnlg-530b", *override)
    assert rc == 2 and needle in err and err.count("\n") == 1 and err.startswith("error: ")


@pytest.mark.parametrize("recompute", list(Recompute))
def test_grouped_query_attention_stores_fewer_keys_and_values(recompute):
    """Llama 3 70B (64 query heads, 8 KV heads of 128) against the same shape with 64 KV heads:
    K and V (bf16, s b x heads x 128 each) and the k/v weights are what shrink."""
    gqa = get_preset("llama3-70b")
    mha = gqa.merge({"n_kv_heads": 64})
    layout = Layout(tp=8, pp=1, dp=1, micro_batch=1, global_batch=1, recompute=recompute)
    s, b, t = 8192, 1, 8
    diff = (layer_activation_bytes(mha, layout, s) - layer_activation_bytes(gqa, layout, s))
    expected = 0.0 if recompute == Recompute.full else 2 * 2 * s * b * (64 - 8) * 128 / t
    assert diff == pytest.approx(expected)
    assert layer_params(mha) - layer_params(gqa) == 2 * 8192 * (64 - 8) * 128  # wk and wv
    gpu = get_gpu("h100-80gb")
    weights = [memory_per_gpu(c, layout, s, gpu).worst.weights for c in (mha, gqa)]
    assert weights[0] - weights[1] == pytest.approx(80 * 2 * 8192 * 56 * 128 / 8 * 2)
