"""Adapting pre-trained runs to tasks, against prompting them.

- :mod:`~scalinglab.adapt.data` — (prompt, answer) rows as a data source for the trainer;
- :mod:`~scalinglab.adapt.finetune` — ``finetune``: supervised fine-tuning with early stopping
  on the pre-training trainer, then the test split scored as ``scalinglab eval`` scores it;
- :mod:`~scalinglab.adapt.compare` — ``compare_adaptation``: 0-shot, k-shot and fine-tuned
  accuracy of every run of a study, against model size.
"""
