import pytest

from scalinglab.errors import ScalinglabError
from scalinglab.model.presets import get_preset
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.layout import layout_errors
from scalinglab.plan.search import SearchSpace, search_layouts


@pytest.fixture(scope="module")
def mtnlg_search():
    return search_layouts(get_preset("mtnlg-530b"), 2240, get_gpu("a100-80gb"), 1920, 2048)


def test_published_mtnlg_layout_is_feasible(mtnlg_search):
    # MT-NLG ran ZeRO-1 next to TP/PP (DeepSpeed); the trainer runs that as ZeRO-2 (FSDP2),
    # which moves the same bytes and holds less, so the planner offers only that.
    assert not mtnlg_search.find(zero_stage=1, tp=8)
    published = mtnlg_search.find(tp=8, pp=35, dp=8, micro_batch=1, recompute="full",
                                  sequence_parallel=True, zero_stage=2)
    assert len(published) == 1
    est = published[0].estimate
    assert est.total_s == pytest.approx(60.1, rel=0.10)
    assert est.tflops_per_gpu == pytest.approx(126, rel=0.10)


def test_every_feasible_layout_is_valid_fits_and_is_ranked(mtnlg_search):
    cfg, gpu = get_preset("mtnlg-530b"), get_gpu("a100-80gb")
    assert mtnlg_search.n_out_of_memory > 0
    assert len(mtnlg_search.feasible) == mtnlg_search.n_valid - mtnlg_search.n_out_of_memory
    for c in mtnlg_search.feasible:
        assert not layout_errors(c.layout, cfg, gpu, 2240) and c.memory.fits
        assert c.layout.tp in (1, 2, 4, 8) and 105 % c.layout.pp == 0
    times = [c.estimate.total_s for c in mtnlg_search.feasible]
    assert times == sorted(times)


def test_layout_cli_lists_published_layout(cli_json, cli):
    data = cli_json("plan", "layout", "--model", "mtnlg-530b", "--gpus", "2240", "--gpu",
                    "a100-80gb", "--batch", "1920", "--top", "200", "--tokens", "270e9")
    labels = [c["label"] for c in data["top"]]
    assert "tp8 pp35 dp8 mb1 zero2 full sp" in labels
    published = data["top"][labels.index("tp8 pp35 dp8 mb1 zero2 full sp")]
    assert published["days"] == pytest.approx(47.8, rel=0.10)  # 68,665 steps of ~60 s
    assert data["n_feasible"] == len(labels)
    rc, out, _ = cli("plan", "layout", "--model", "mtnlg-530b", "--gpus", "2240", "--batch",
                     "1920", "tp=8", "pp=[35]", "recompute=full", "zero_stage=2")
    assert rc == 0 and "tp8 pp35 dp8 mb1 zero2 full sp " in out


def test_shape_spec_and_search_space(cli_json):
    data = cli_json("plan", "layout", "--model", "24/2048/16", "--gpus", "16", "--gpu",
                    "h100-80gb", "--batch", "64", "micro_batch=[1,2]", "matmul_efficiency=0.4")
    assert all(c["layout"]["micro_batch"] in (1, 2) for c in data["top"])


@pytest.mark.parametrize("args,needle", [
    (["--gpus", "2241"], "no valid layout for 2241 GPUs"),
    (["--gpus", "8"], "none of the"),
    (["--gpus", "2240", "--gpu", "nope"], "unknown GPU kind"),
    (["--gpus", "2240", "foo=1"], "unknown override 'foo'"),
    (["--gpus", "2240", "tp=[x]"], "SearchSpace.tp"),
])
def test_layout_cli_errors_are_one_line(cli, args, needle):
    rc, _, err = cli("plan", "layout", "--model", "mtnlg-530b", "--batch", "1920", *args)
    assert rc == 2 and needle in err and err.count("\n") == 1


def test_search_space_restricts_degrees():
    r = search_layouts(get_preset("gpt3-1.3b"), 8, get_gpu("a100-40gb"), 64, 2048,
                       SearchSpace(tp=[2], pp=[1]))
    assert {(c.layout.tp, c.layout.pp, c.layout.dp) for c in r.feasible} == {(2, 1, 4)}
    with pytest.raises(ScalinglabError):
        search_layouts(get_preset("gpt3-1.3b"), 8, get_gpu("a100-40gb"), 0, 2048)


def test_planner_does_not_import_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import scalinglab

    src = str(Path(scalinglab.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = ("import sys, scalinglab.plan.bigrun, scalinglab.cli.plan; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "False"


def test_search_never_splits_key_value_heads_unevenly():
    """Grouped-query attention: tp must divide n_kv_heads too, not only n_heads (the trainer
    column-splits wk/wv with their query groups)."""
    gqa = get_preset("llama3-8b").merge({"n_kv_heads": 2})
    result = search_layouts(gqa, 64, get_gpu("h100-80gb"), 512, 8192)
    assert result.feasible and {c.layout.tp for c in result.feasible} <= {1, 2}
    mha = search_layouts(get_preset("llama3-8b").merge({"n_kv_heads": 32}), 64,
                         get_gpu("h100-80gb"), 512, 8192)
    assert {c.layout.tp for c in mha.feasible} > {1, 2}
