"""The layout vocabulary shared by the planner and the trainer.

``ParallelConfig`` (plain data, no torch) is what ``train --parallel`` runs and what
``plan layout`` / ``plan run`` recommend; ``rules.layout_problems`` is the one list of
checks both apply. It sits below ``train``, ``parallel`` and ``plan`` so that each of them
reads it without importing the others.
"""
