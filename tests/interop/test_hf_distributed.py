"""Export of a sharded distributed run: the DCP checkpoint that an FSDP run under torchrun
wrote (no process group needed to read it) exports to the same HF model as the run's final
``model.safetensors``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from scalinglab.cli import main
from scalinglab.testing.distributed import torchrun
from scalinglab.train.checkpoint import load_model
from tests.conftest import make_shards

transformers = pytest.importorskip("transformers", reason="pip install '.[hf]'")


@pytest.mark.distributed
@pytest.mark.slow
def test_sharded_fsdp_checkpoint_exports_with_parity(tmp_path: Path) -> None:
    data = make_shards(tmp_path / "shards", vocab_size=257)
    run = tmp_path / "run"
    torchrun(["-m", "scalinglab", "train", "--preset", "tiny", "--tokens", "2048", "--quiet",
              "--data", str(data), "--out", str(run), "--parallel", "fsdp=2",
              "batch_tokens=512", "eval_tokens=256", "device=cpu", "checkpoint_every=4",
              "model.vocab_size=257", "model.norm=rmsnorm", "model.position=rotary",
              "model.mlp=swiglu", "model.tie_embeddings=false"], world_size=2)
    step = run / "checkpoints" / "step-00000004"
    assert (step / ".metadata").is_file() and len(list(step.glob("*.distcp"))) == 2
    final = load_model(run)  # what the run exported after its last (checkpointed) step

    # The step directory itself, then the run with its final export removed (fallback)
    assert main(["export", str(step), "--to", "hf", "--out", str(tmp_path / "hf1")]) == 0
    shutil.move(run / "model.safetensors", tmp_path / "final.safetensors")
    assert main(["export", str(run), "--to", "hf", "--out", str(tmp_path / "hf2")]) == 0

    tokens = torch.randint(0, 257, (3, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = final(tokens)
        for out in ("hf1", "hf2"):
            hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / out).eval()
            assert type(hf).__name__ == "LlamaForCausalLM"
            torch.testing.assert_close(hf(tokens).logits, ours, atol=1e-5, rtol=0)
