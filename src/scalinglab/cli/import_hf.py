"""``scalinglab import --from-hf DIR --out RUN``: a Llama- or GPT-2-layout Hugging Face
checkpoint as a scalinglab run directory. (Module name: ``import`` is a Python keyword.)"""

from __future__ import annotations


def run(args) -> int:
    from scalinglab.interop.imports import import_hf

    out = import_hf(args.from_hf, args.out)
    print(f"wrote {out} (scalinglab eval {out} --tasks ... evaluates it)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="import a Hugging Face Llama / GPT-2 checkpoint as a run",
        description="Convert a local HF checkpoint directory (safetensors) into a run "
        "directory. Example: scalinglab import --from-hf hf/tiny --out runs/tiny-back",
    )
    p.add_argument("--from-hf", required=True, metavar="DIR",
                   help="local checkpoint directory (or a hub id, which needs a network)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.set_defaults(func=run)
