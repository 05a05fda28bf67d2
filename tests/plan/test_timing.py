import pytest

from scalinglab.model.presets import get_preset
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.layout import Layout, Recompute
from scalinglab.plan.timing import (
    days_to_train,
    estimate_iteration,
    executed_flops_per_iteration,
    iteration_time,
    tflops_per_gpu,
)

# Smith et al. 2022 (MT-NLG), Table 1: nodes, seconds per iteration, TFLOP/s per GPU.
MTNLG_RUNS = [(280, 60.1, 126), (350, 50.2, 121), (420, 44.4, 113)]


def test_throughput_cli_reproduces_mtnlg_tflops_within_2_percent(cli_json):
    data = cli_json("plan", "throughput", "--model", "mtnlg-530b", "--nodes", "280", "350",
                    "420", "--gpu", "a100-80gb", "--batch", "1920", "--seq", "2048",
                    "--iter-time", "60.1", "50.2", "44.4")
    for row, (nodes, _, published) in zip(data["rows"], MTNLG_RUNS, strict=True):
        assert row["gpus"] == nodes * 8
        assert row["tflops_per_gpu"] == pytest.approx(published, rel=0.02)


def test_throughput_cli_from_tflops_gives_iteration_time_and_days(cli_json, cli):
    data = cli_json("plan", "throughput", "--model", "mtnlg-530b", "--gpus", "2240", "2800",
                    "3360", "--batch", "1920", "--tflops", "126", "121", "113")
    for row, (_, seconds, _) in zip(data["rows"], MTNLG_RUNS, strict=True):
        assert row["iteration_s"] == pytest.approx(seconds, rel=0.02)
        # 270B tokens = 68,665 iterations of 1920 x 2048 tokens.
        assert row["days"] == pytest.approx(270e9 / (1920 * 2048) * seconds / 86400, rel=0.02)
    rc, out, _ = cli("plan", "throughput", "--model", "mtnlg-530b", "--gpus", "2240",
                     "--batch", "1920", "--tflops", "126")
    assert rc == 0 and "60.0" in out and "47.7" in out


def test_tflops_and_iteration_time_are_inverse():
    cfg = get_preset("gpt3-175b")
    t = iteration_time(cfg, 1536, 2048, 140.0, 1024)
    assert tflops_per_gpu(cfg, 1536, 2048, t, 1024) == pytest.approx(140.0)
    assert days_to_train(300e9, 1536, 2048, t) == pytest.approx(300e9 / (1536 * 2048) * t / 86400)


def test_recompute_flops_ordering():
    cfg = get_preset("gpt3-13b")
    none, sel, full = (executed_flops_per_iteration(cfg, 512, 2048, r) for r in Recompute)
    assert none < sel < full and full / none == pytest.approx(96 / 72)


def test_estimate_of_published_mtnlg_layout_is_consistent_with_measurements():
    cfg, gpu = get_preset("mtnlg-530b"), get_gpu("a100-80gb")
    estimates = []
    for nodes, seconds, _ in MTNLG_RUNS:
        layout = Layout(tp=8, pp=35, dp=nodes * 8 // 280, micro_batch=1, global_batch=1920,
                        zero_stage=1, recompute=Recompute.full)
        est = estimate_iteration(cfg, layout, gpu, 2048)
        assert est.total_s == pytest.approx(seconds, rel=0.10)
        estimates.append(est)
    # More data-parallel replicas: faster steps but a bigger bubble share and lower TFLOP/s.
    assert [e.total_s for e in estimates] == sorted((e.total_s for e in estimates), reverse=True)
    assert [e.tflops_per_gpu for e in estimates] == sorted(
        (e.tflops_per_gpu for e in estimates), reverse=True)


def test_bubble_is_p_minus_1_over_m_and_interleaving_shrinks_it():
    cfg, gpu = get_preset("gpt3-13b"), get_gpu("h100-80gb")
    layout = Layout(tp=8, pp=4, dp=1, global_batch=32, recompute=Recompute.selective)
    est = estimate_iteration(cfg, layout, gpu, 2048)
    steady = est.total_s - est.bubble_s - est.dp_comm_s - est.optimizer_s
    assert est.bubble_s / steady == pytest.approx(3 / 32)
    inter = estimate_iteration(cfg, layout.merge({"schedule": "interleaved",
                                                  "virtual_stages": 2}), gpu, 2048)
    assert inter.bubble_s < est.bubble_s
