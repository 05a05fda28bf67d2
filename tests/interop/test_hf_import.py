"""Import from Hugging Face: tiny random stock models built here (no hub) become run
directories whose scalinglab model computes the HF logits; unsupported checkpoints are
one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from scalinglab.cli import main
from scalinglab.eval.model_io import load_eval_model
from scalinglab.eval.tokenizer import tokenizer_for_run
from tests.interop.test_hf_export import random_model

transformers = pytest.importorskip("transformers", reason="pip install '.[hf]'")


def _randomise(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def tiny_llama(tmp, tie=False, bias=False, kv=4):
    cfg = transformers.LlamaConfig(
        vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=kv, head_dim=16,
        max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=tie,
        attention_bias=bias, mlp_bias=bias, rope_theta=5000.0)
    model = _randomise(transformers.LlamaForCausalLM(cfg))
    model.save_pretrained(tmp)
    return model


def tiny_gpt2(tmp, tie=True, act="gelu"):
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=64, n_embd=48, n_layer=2,
                                  n_head=4, n_inner=96, activation_function=act,
                                  tie_word_embeddings=tie)
    model = _randomise(transformers.GPT2LMHeadModel(cfg))
    model.save_pretrained(tmp)
    return model


@pytest.mark.parametrize("build, tie", [(tiny_llama, False), (tiny_llama, True),
                                         (tiny_gpt2, True), (tiny_gpt2, False)])
def test_import_matches_hf_logits(tmp_path, build, tie):
    hf = build(tmp_path / "hf", tie=tie)
    assert main(["import", "--from-hf", str(tmp_path / "hf"), "--out",
                 str(tmp_path / "run")]) == 0
    ours = load_eval_model(tmp_path / "run")
    assert ours.config.tie_embeddings == tie
    tokens = torch.randint(0, 97, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, mine = hf(tokens).logits, ours(tokens)
    assert theirs.std() > 0.1
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == ours.config.as_dict()


def test_llama_with_attention_bias_imports(tmp_path):
    hf = tiny_llama(tmp_path / "hf", bias=True)
    main(["import", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    tokens = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(load_eval_model(tmp_path / "run")(tokens),
                                   hf(tokens).logits, atol=1e-5, rtol=0)


def test_export_then_import_round_trips_with_the_tokenizer(tmp_path):
    from scalinglab.train.checkpoint import export_model

    model = random_model({"norm": "rmsnorm", "position": "rotary", "mlp": "swiglu"})
    export_model(tmp_path / "run", model, model.config)
    main(["export", str(tmp_path / "run"), "--to", "hf", "--out", str(tmp_path / "hf")])
    main(["import", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")])
    back = load_eval_model(tmp_path / "back")
    assert back.config.as_dict() == model.config.as_dict()
    for (k, a), b in zip(model.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # exact: the rotary permutation is inverted
    tok = tokenizer_for_run(tmp_path / "back", 257)
    assert tok.eot_id == 256 and tok.encode("héllo") == list("héllo".encode())


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_unsupported_checkpoints_are_one_line(tmp_path, capsys):
    tiny_gpt2(tmp_path / "newgelu", act="gelu_new")
    tiny_llama(tmp_path / "bin")
    capsys.readouterr()  # save_pretrained's progress bars
    assert main(["import", "--from-hf", str(tmp_path / "newgelu"), "--out",
                 str(tmp_path / "r1")]) == 2
    assert f"{tmp_path / 'newgelu' / 'config.json'}: activation_function='gelu_new'" in \
        _err(capsys)

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "bert"}')
    assert main(["import", "--from-hf", str(tmp_path / "other"), "--out",
                 str(tmp_path / "r2")]) == 2
    assert "model_type='bert' is not supported; supported: llama, gpt2" in _err(capsys)

    (tmp_path / "bin" / "model.safetensors").rename(tmp_path / "bin" / "pytorch_model.bin")
    assert main(["import", "--from-hf", str(tmp_path / "bin"), "--out",
                 str(tmp_path / "r3")]) == 2
    assert "pytorch_model.bin (a pickle) is not read" in _err(capsys)
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


def test_hub_id_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["import", "--from-hf", "some-org/some-model", "--out",
                 str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "some-org/some-model: cannot download from the Hugging Face hub (offline?" in err


def test_grouped_query_attention(tmp_path, capsys):
    """Llama with 2 KV heads for 4 query heads imports exactly as n_kv_heads=2."""
    hf = tiny_llama(tmp_path / "hf", kv=2)
    capsys.readouterr()
    rc = main(["import", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    assert rc == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["n_kv_heads"] == 2
    tokens = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(load_eval_model(tmp_path / "run")(tokens),
                                   hf(tokens).logits, atol=1e-5, rtol=0)
