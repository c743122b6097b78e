"""``fer-train``: the workstation command for models, training, evaluation and comparison."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from edge.cli import run_command

log = logging.getLogger(__name__)


def _cmd_models(args: argparse.Namespace) -> int:
    from train.models import create_model, get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        model = create_model(name)
        rows.append(
            {
                "name": name,
                "params": int(model.count_params()),
                "seed": spec.seed,
                "kind": spec.kind,
                "source": spec.source,
                "paper_params": spec.paper_params,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(
                f"{r['name']:24s} {r['kind']:9s} {r['params']:>10,d}  seed {r['seed']}  ({r['source']})"
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fer-train`` argument parser (sub-commands add themselves here)."""
    p = argparse.ArgumentParser(prog="fer-train", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list registered architectures")
    m.add_argument(
        "--json", action="store_true", help="print a JSON list of {name, params, seed, kind}"
    )
    m.set_defaults(func=_cmd_models)

    from train import commands

    commands.add_subcommands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, turn :class:`FerEdgeError` into a message and exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # provenance: run folders record the exact command
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(args.func, args, "fer-train")


if __name__ == "__main__":
    sys.exit(main())
