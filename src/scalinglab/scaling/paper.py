"""Published figures of Hoffmann et al. (2022) that several stages quote: plain constants,
no imports, so the planner (which must stay light) and the allocation share one copy."""

CHINCHILLA_BUDGET = 5.76e23
"""Gopher's and Chinchilla's training compute (FLOPs)."""

APPROACH2_N_AT_BUDGET = 63e9
"""The paper's Approach 2 model size for that budget."""

CHINCHILLA_TABLE3 = (
    (400e6, 1.92e19, 8.0e9), (1e9, 1.21e20, 20.2e9), (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12), (175e9, 3.85e24, 3.7e12), (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12), (1e12, 1.27e26, 21.2e12), (10e12, 1.30e28, 216.2e12),
)
"""Table 3 (Approach 1 projections): (parameters, training FLOPs, training tokens)."""
