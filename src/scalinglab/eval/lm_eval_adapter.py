"""scalinglab checkpoints as a model of EleutherAI's lm-evaluation-harness (extra ``eval``).

Importing this module registers the model name ``scalinglab``::

    import lm_eval
    from lm_eval.tasks import TaskManager
    from scalinglab.eval.lm_eval_adapter import ScalinglabLM

    lm = ScalinglabLM(pretrained="runs/tiny")        # or tokenizer="path/tokenizer.json"
    out = lm_eval.simple_evaluate(model=lm, tasks=["my_piqa"],
                                  task_manager=TaskManager(include_path="my_tasks/"))

Task YAMLs work offline with local JSONL: ``dataset_path: json`` and
``dataset_kwargs: {data_files: {test: /path/piqa.jsonl}}``. All three request types go through
:class:`scalinglab.eval.scoring.Scorer`, the harness scalinglab's own ``eval`` uses, so both
report the same numbers on the same task (checked in ``tests/eval/test_lm_eval_adapter.py``).
"""

from __future__ import annotations

from typing import Any

import lm_eval.models  # noqa: F401  (see below)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from scalinglab.eval.model_io import load_eval_model, run_dir_of
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tokenizer import load_tokenizer, tokenizer_for_run

DEFAULT_MAX_GEN_TOKS = 256
# lm-eval registers its own models (hf, vllm...) lazily, only while its registry is empty:
# registering ours into an empty registry would hide them for the rest of the process, so
# `lm_eval.models` is imported first (measured: `--model hf` was unknown after our import).


@register_model("scalinglab")
class ScalinglabLM(LM):
    """lm-eval model over a scalinglab run directory, ``model.safetensors`` or ``step-N.pt``.

    Args:
        pretrained: the model path.
        tokenizer: ``tokenizer.json`` or ``"bytes"``; default: the run's.
        device: ``cpu`` or ``cuda``.
        batch_tokens: padded tokens per forward pass.
    """

    def __init__(self, pretrained: str, tokenizer: str | None = None, device: str = "cpu",
                 batch_tokens: int = 8192, **_: Any):
        super().__init__()
        model = load_eval_model(pretrained, device=device)
        tok = (load_tokenizer(tokenizer) if tokenizer
               else tokenizer_for_run(run_dir_of(pretrained), model.config.vocab_size))
        self.scorer = Scorer(model, tok, batch_tokens=int(batch_tokens))

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        # Requests arrive question by question; consecutive equal contexts share one row.
        return self.scorer.loglikelihood([tuple(r.args) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return self.scorer.rolling_loglikelihood([r.args[0] for r in requests])

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in tqdm(requests, desc="generate_until", disable=disable_tqdm):
            context, kwargs = r.args
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            temperature = float(kwargs.get("temperature", 0.0) or 0.0)
            if kwargs.get("do_sample") is False:
                temperature = 0.0
            out.append(self.scorer.generate(
                context, until=until,
                max_new_tokens=int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
                temperature=temperature, seed=int(kwargs.get("seed", 0) or 0)))
        return out
