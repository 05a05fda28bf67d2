"""Evaluation: zero/few-shot tasks by log-likelihood, cloze, bits per byte, generation.

- :mod:`~scalinglab.eval.scoring` — ``Scorer``: log-likelihoods (a question's choices share
  its context through the model's prefix-sharing mask), rolling log-likelihoods, generation;
- :mod:`~scalinglab.eval.tasks` — task files, JSONL loaders, built-in held-out tasks;
- :mod:`~scalinglab.eval.fewshot` / :mod:`~scalinglab.eval.metrics` — pure rendering/metrics;
- :mod:`~scalinglab.eval.runner` — ``evaluate`` and the ``results.json`` schema;
- :mod:`~scalinglab.eval.api` — ``evaluate_run``, what ``scalinglab eval`` calls;
- :mod:`~scalinglab.eval.lm_eval_adapter` — the model for EleutherAI lm-eval (extra ``eval``).
"""
