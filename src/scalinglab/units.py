"""Human-readable quantities, shared by the CLI tables, the report and the figures."""

from __future__ import annotations


def format_count(n: float) -> str:
    """1.234e9 -> '1.23B' (parameters, tokens, FLOPs)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"
