import pytest

from scalinglab.errors import ScalinglabError
from scalinglab.plan.hardware import CATALOGUE, get_gpu, load_catalogue


def test_catalogue_has_the_required_kinds_with_datasheet_figures():
    for name in ("a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb"):
        spec = get_gpu(name)
        assert spec.gpus_per_node == 8 and spec.nvlink_gbs > spec.internode_gbs
    assert get_gpu("A100-80GB").peak_flops == 312e12
    assert get_gpu("h100-80gb").peak_bf16_tflops > 3 * get_gpu("a100-80gb").peak_bf16_tflops
    assert get_gpu("h200-141gb").memory_gib > get_gpu("h100-80gb").memory_gib


def test_user_file_adds_and_overrides_kinds(tmp_path):
    path = tmp_path / "gpus.yaml"
    path.write_text("mi300x:\n  peak_bf16_tflops: 1307\n  memory_gib: 192\n"
                    "a100-80gb:\n  gpus_per_node: 4\n")
    cat = load_catalogue(path)
    assert cat["mi300x"].memory_gib == 192 and cat["mi300x"].peak_bf16_tflops == 1307
    assert cat["a100-80gb"].gpus_per_node == 4 and cat["a100-80gb"].memory_gib == 80
    assert CATALOGUE["a100-80gb"].gpus_per_node == 8  # built-ins untouched


@pytest.mark.parametrize("text", ["- not a mapping\n", "x:\n  memory_gib: -1\n",
                                  "x:\n  bogus: 1\n", "x: 3\n"])
def test_bad_catalogue_files_are_one_line_errors(tmp_path, text):
    path = tmp_path / "gpus.yaml"
    path.write_text(text)
    with pytest.raises(ScalinglabError) as e:
        load_catalogue(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unknown_kind_via_cli_is_one_line_error(cli):
    rc, out, err = cli("plan", "memory", "--model", "tiny", "--gpu", "b300")
    assert rc == 2 and err.count("\n") == 1 and "unknown GPU kind 'b300'" in err


def test_hardware_listing_includes_user_kinds(cli_json, tmp_path):
    path = tmp_path / "gpus.json"
    path.write_text('{"tpu-ish": {"memory_gib": 16}}')
    names = [r["name"] for r in cli_json("plan", "hardware", "--catalogue", path)]
    assert "tpu-ish" in names and "h200-141gb" in names
