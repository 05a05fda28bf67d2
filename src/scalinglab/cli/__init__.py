"""The ``scalinglab`` command: one subcommand per stage, each also a Python API.

Every stage lives in its own module here with a ``register(subparsers)`` function that adds
its parser and sets ``func``; add new stages to ``STAGES``. Errors that are the user's to fix
(``ScalinglabError``) print as one line and exit with status 2; so does an ``OSError`` (a
full disk, a permission), with the stage and the file.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scalinglab.errors import ScalinglabError
from scalinglab.io import StorageError

STAGES = ["models", "train", "demo", "data", "tokenizer", "plan", "fit", "allocate",
          "predict", "backtest", "eval", "sweep", "report", "toxicity", "finetune",
          "compare-adaptation", "bias", "export", "import"]
# a stage `a-b` lives in module `a_b`; `import` is a keyword, so its module has another name
_MODULE = {"import": "import_hf"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalinglab",
        description="Compute-optimal language-model pretraining: data, models, training, "
        "scaling laws, planning and evaluation.",
    )
    subparsers = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in STAGES:
        module = _MODULE.get(stage, stage.replace("-", "_"))
        importlib.import_module(f"scalinglab.cli.{module}").register(subparsers)
    return parser


def stage_name(args: argparse.Namespace) -> str:
    """``train``, ``sweep run``, ``data prepare``: the stage an error happened in."""
    subs = [getattr(args, k, None) for k in ("sweep_cmd", "data_command", "plan_cmd", "action")]
    return " ".join([args.stage, *(s for s in subs if isinstance(s, str))])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Like ``parse_args``, but ``key=value`` overrides may follow an option.

    argparse fills ``STUDY`` and the overrides (``nargs="*"``) together, so in
    ``sweep plan STUDY --data X key=value`` (the documented form) ``key=value`` would be an
    unrecognized argument; a stage with overrides takes such leftovers as overrides.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = getattr(args, "overrides", None)
    if extra and isinstance(overrides, list) and all("=" in x and x[0] != "-" for x in extra):
        overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StorageError as e:  # a write failed (disk full, permissions): which stage, which file
        print(f"error: {stage_name(args)}: {e}", file=sys.stderr)
        return 2
    except ScalinglabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `scalinglab ... | head` closed our stdout: not an error worth a traceback.
        sys.stderr.close()
        return 0
    except OSError as e:  # the environment, not a bug: one line, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {stage_name(args)}: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
