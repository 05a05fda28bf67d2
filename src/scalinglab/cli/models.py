"""``scalinglab models``: every preset with its shape, parameters and FLOPs per token."""

from __future__ import annotations

from scalinglab.cli.common import print_json, print_table
from scalinglab.model.accounting import FlopConvention, count_params, train_flops_per_token
from scalinglab.model.presets import PRESETS, PUBLISHED_PARAMS, get_preset
from scalinglab.units import format_count


def model_rows() -> list[dict]:
    rows = []
    for name in PRESETS:
        cfg = get_preset(name)
        params = count_params(cfg)
        rows.append({
            "preset": name, "n_layers": cfg.n_layers, "d_model": cfg.d_model,
            "n_heads": cfg.n_heads, "n_kv_heads": cfg.kv_heads, "d_head": cfg.head_dim,
            "d_ff": cfg.ff_dim,
            "vocab_size": cfg.vocab_size, "norm": cfg.norm.value,
            "position": cfg.position.value, "params_total": params.total,
            "params_non_embedding": params.non_embedding,
            "published_params": PUBLISHED_PARAMS.get(name),
            "flops_per_token_6n": train_flops_per_token(cfg, FlopConvention.kaplan),
            "flops_per_token_chinchilla": train_flops_per_token(cfg, FlopConvention.chinchilla),
        })
    return rows


def run(args) -> int:
    rows = model_rows()
    if args.json:
        print_json(rows)
        return 0
    table = [{
        "preset": r["preset"], "shape (l/d/h)": f"{r['n_layers']}/{r['d_model']}/{r['n_heads']}",
        "kv": r["n_kv_heads"],
        "vocab": r["vocab_size"], "pos": r["position"], "params": format_count(r["params_total"]),
        "published": format_count(r["published_params"]) if r["published_params"] else "-",
        "non-emb": format_count(r["params_non_embedding"]),
        "6N/token": f"{r['flops_per_token_6n']:.3g}",
        "AppF/token": f"{r['flops_per_token_chinchilla']:.3g}",
    } for r in rows]
    print_table(table, list(table[0]))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list model presets with parameters and FLOPs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
