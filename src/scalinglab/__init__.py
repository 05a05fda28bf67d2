"""scalinglab: compute-optimal language-model pretraining, from corpus to scaling-law plan."""

__version__ = "0.1.0"
