"""Export to Hugging Face transformers: the stock classes load the directory with no custom
code and compute our logits to 1e-5 (fp32) and our greedy tokens, for every layout, tied and
untied; unmappable variants are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scalinglab.cli import main
from scalinglab.eval.tokenizer import ByteTokenizer
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import Transformer, build_model
from scalinglab.train.checkpoint import export_model

transformers = pytest.importorskip("transformers", reason="pip install '.[hf]'")

LLAMA = {"norm": "rmsnorm", "position": "rotary", "mlp": "swiglu"}
GPT2 = {"norm": "layernorm", "position": "learned", "mlp": "gelu"}
CASES = {
    "gpt2-tied": (GPT2, "GPT2LMHeadModel"),
    "gpt2-untied-nobias": ({**GPT2, "tie_embeddings": False, "bias": False}, "GPT2LMHeadModel"),
    "llama-tied": ({**LLAMA, "bias": False}, "LlamaForCausalLM"),
    "llama-untied-bias": ({**LLAMA, "tie_embeddings": False, "bias": True}, "LlamaForCausalLM"),
    "llama-gqa": ({**LLAMA, "n_kv_heads": 2}, "LlamaForCausalLM"),
    "llama-mqa": ({**LLAMA, "n_kv_heads": 1, "tie_embeddings": False}, "LlamaForCausalLM"),
}


def random_model(overrides: dict, vocab: int = 257, seed: int = 0) -> Transformer:
    """A tiny model with every parameter random (norm gains and biases too), so a swapped,
    untransposed or unpermuted tensor changes the logits."""
    cfg = tiny().merge({"vocab_size": vocab, "max_seq_len": 64, **overrides})
    model = build_model(cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def make_run(tmp: Path, overrides: dict, name: str = "run") -> tuple[Path, Transformer]:
    model = random_model(overrides)
    export_model(tmp / name, model, model.config)
    return tmp / name, model


def greedy(model: Transformer, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Our greedy decoding, written out: full forward each step, argmax of the last row."""
    ids = prompt
    for _ in range(n):
        with torch.no_grad():
            nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    return ids


@pytest.mark.parametrize("case", list(CASES))
def test_export_loads_with_stock_classes_and_matches_logits(tmp_path, case):
    overrides, arch = CASES[case]
    run, model = make_run(tmp_path, overrides)
    out = tmp_path / "hf"
    assert main(["export", str(run), "--to", "hf", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json"} <= names
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == arch
    assert hf.config.tie_word_embeddings == model.config.tie_embeddings
    assert getattr(hf.config, "num_key_value_heads", hf.config.num_attention_heads) == \
        model.config.kv_heads
    if model.config.tie_embeddings:
        assert hf.lm_head.weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()
    tokens = torch.randint(0, 257, (4, 48), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    assert ours.std() > 0.1  # not vacuous: the logits vary
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)

    prompt = tokens[:2, :6]
    got = hf.generate(prompt, max_new_tokens=12, do_sample=False,
                      attention_mask=torch.ones_like(prompt), eos_token_id=None,
                      min_new_tokens=12)
    assert torch.equal(got, greedy(model, prompt, 12))


def test_exported_tokenizer_is_the_byte_tokenizer(tmp_path):
    run, _ = make_run(tmp_path, GPT2)
    out = tmp_path / "hf"
    main(["export", str(run), "--to", "hf", "--out", str(out)])
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert isinstance(tok, transformers.PreTrainedTokenizerFast)
    text = "Héllo, wörld!\n\ttabs  and  emoji \U0001f600"
    assert tok(text)["input_ids"] == ByteTokenizer().encode(text)
    assert tok.decode(ByteTokenizer().encode(text)) == text
    assert tok.bos_token == tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 256
    special = json.loads((out / "special_tokens_map.json").read_text())
    assert special["eos_token"] == "<|endoftext|>"
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == gen["bos_token_id"] == 256


def test_run_with_a_bpe_tokenizer_exports_it(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["the river and the stone garden"] * 50, trainer)
    model = random_model(GPT2, vocab=bpe.get_vocab_size())
    export_model(tmp_path / "run", model, model.config)
    bpe.save(str(tmp_path / "run" / "tokenizer.json"))
    main(["export", str(tmp_path / "run"), "--to", "hf", "--out", str(tmp_path / "hf")])
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "the stone river"
    assert tok(text)["input_ids"] == bpe.encode(text).ids
    assert len(bpe.encode(text).ids) < len(text)  # merges were used
    assert tok.eos_token_id == bpe.token_to_id("<|endoftext|>") == 0


def test_sharded_bf16_export(tmp_path):
    run, model = make_run(tmp_path, LLAMA)
    out = tmp_path / "hf"
    assert main(["export", str(run), "--to", "hf", "--out", str(out), "--dtype", "bf16",
                 "--max-shard-size", "50KB"]) == 0
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and all((out / s).is_file() for s in shards)
    from safetensors import safe_open

    with safe_open(str(out / shards[0]), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in f.keys())
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokens = torch.randint(0, 257, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(tokens)
        theirs = hf(tokens).logits
    # bf16 weights: agreement to bf16 precision (8 bits of mantissa), not 1e-5
    assert (theirs - ours).abs().max() < 0.05 * ours.abs().max()


@pytest.mark.parametrize("variant, words", [
    ({"position": "relative", "norm": "rmsnorm"}, "position=relative (Transformer-XL"),
    ({"norm": "rmsnorm", "position": "learned"}, "norm=rmsnorm position=learned"),
])
def test_variant_without_equivalent_is_one_line(tmp_path, capsys, variant, words):
    run, _ = make_run(tmp_path, variant)
    assert main(["export", str(run), "--to", "hf", "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err
    assert "supported: llama (rmsnorm+rotary+swiglu); gpt2 (layernorm+learned+gelu)" in err
    assert not (tmp_path / "hf").exists()


def test_grouped_query_attention_has_no_gpt2_layout(tmp_path, capsys):
    run, _ = make_run(tmp_path, {**GPT2, "n_kv_heads": 2})
    assert main(["export", str(run), "--to", "hf", "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gpt2 layout has no grouped-query attention" in err


def test_missing_run_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--to", "hf", "--out",
                 str(tmp_path / "hf")]) == 2
    assert "nope: no such run directory" in capsys.readouterr().err
