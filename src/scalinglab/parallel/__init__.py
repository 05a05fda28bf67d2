"""Distributed training on PyTorch's engine: DDP, FSDP2, tensor and pipeline parallelism.

``ParallelConfig`` (``scalinglab.layout``, plain data) describes a layout;
``ParallelDims`` validates it and owns the named DeviceMesh; ``parallelize`` applies TP ->
activation checkpointing -> compile -> FSDP2 to a model built on ``meta``; ``pp`` builds
pipeline stages and schedules; ``DistributedTrainer`` (``parallel.trainer``) trains under
``torchrun`` and ``parallel.checkpoint`` saves and reshards DCP checkpoints.
"""
