"""``scalinglab export RUN --to hf --out DIR [--dtype fp32|bf16]``: a run as a stock
Hugging Face ``transformers`` directory (Llama or GPT-2 layout)."""

from __future__ import annotations


def run(args) -> int:
    from scalinglab.eval.tokenizer import load_tokenizer
    from scalinglab.interop.export import export_hf

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else None
    out = export_hf(args.model, args.out, dtype=args.dtype, max_shard_size=args.max_shard_size,
                    tokenizer=tok)
    print(f"wrote {out} (AutoModelForCausalLM.from_pretrained({str(out)!r}) loads it)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a run to Hugging Face transformers (Llama / GPT-2 layout)",
        description="Write a run as config.json + safetensors + generation_config.json + "
        "tokenizer files that transformers loads with no custom code. Example: scalinglab "
        "export runs/tiny --to hf --out hf/tiny --dtype bf16",
    )
    p.add_argument("model", help="run directory, model.safetensors, checkpoints/step-N.pt or a "
                   "sharded checkpoints/step-N/ directory")
    p.add_argument("--to", required=True, choices=["hf"], help="target format")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weight dtype")
    p.add_argument("--max-shard-size", default="2GB",
                   help="split the weights into shards above this size (2GB)")
    p.add_argument("--tokenizer", help="tokenizer.json, or 'bytes' (default: the run's)")
    p.set_defaults(func=run)
