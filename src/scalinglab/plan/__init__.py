"""Cluster planner: memory per GPU, 3D-parallel layouts, time to train, depth vs width, and
the plan for a big run. Pure Python on top of ``scalinglab.model.accounting`` (no torch), so a
530B-parameter model is planned instantly."""
