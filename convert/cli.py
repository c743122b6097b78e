"""``fer-convert``: trained ``.keras`` model -> parity-gated, self-describing ``.tflite``.

Prints one JSON object (the parity report) on stdout; logs go to stderr. Exit codes: 0 success,
2 bad input (nothing written), 3 parity gate failed (report written, model not).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge.contract import LABEL_SETS
from edge.errors import FerEdgeError

if TYPE_CHECKING:
    from convert.pipeline import ConvertOptions

log = logging.getLogger(__name__)

_QUANTIZE_HELP = (
    "int8 (default): full-integer, TFLITE_BUILTINS_INT8 only, int8 input/output - the device "
    "format. float16: float16 weights. dynamic: int8 weights, float activations; converted with "
    "per-tensor dense weights so it also loads in tflite-runtime 2.14 (FULLY_CONNECTED v9). "
    "float32: no quantization. No mode uses Flex/select TF ops."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``fer-convert`` argument parser."""
    from convert.quantize import MODES

    p = argparse.ArgumentParser(
        prog="fer-convert",
        description=(
            "Convert a trained fer-train model (.keras) to TFLite for the device, check it "
            "against the float model on the validation split (parity gate) and embed its "
            "metadata (labels, preprocessing contract, provenance). Writes OUT.tflite and "
            "OUT.json; prints the parity report as one JSON object."
        ),
        epilog="Exit codes: 0 ok, 2 bad input (nothing written), 3 parity gate failed.",
    )
    p.add_argument("model", type=Path, help="trained model (.keras) of a registry architecture")
    p.add_argument("--data", type=Path, required=True, help="FER2013 CSV (plain or .gz)")
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="output .tflite (folder must exist)"
    )
    p.add_argument("--quantize", choices=MODES, default="int8", help=_QUANTIZE_HELP)
    _add_gate_args(p)
    _add_label_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _add_gate_args(p: argparse.ArgumentParser) -> None:
    """Calibration sample and parity gate."""
    p.add_argument(
        "--representative",
        type=int,
        default=500,
        metavar="N",
        help="stratified Training faces for int8 calibration (default 500)",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        metavar="PP",
        help="largest allowed accuracy drop in percentage points; beyond it exit 3 (default 1.0)",
    )
    p.add_argument(
        "--report", type=Path, metavar="DIR", help="write the parity report to DIR/parity.json"
    )


def _add_label_args(p: argparse.ArgumentParser) -> None:
    """Which labels the model has and which split checks it."""
    p.add_argument(
        "--labels",
        choices=sorted(LABEL_SETS),
        help="label set of the model (default: the run's config.json, else by output size)",
    )
    p.add_argument("--ferplus", type=Path, metavar="CSV", help="FERPlus vote CSV (FERPlus models)")
    p.add_argument(
        "--val-usage",
        choices=("PublicTest", "PrivateTest"),
        help="validation split for the parity gate (default: the run's, else PublicTest)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the representative sample")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, convert, print the parity report; errors become exit codes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from convert.pipeline import run_convert

    try:
        report = run_convert(_options(args, argv))
    except FerEdgeError as e:
        from convert.parity import ParityGateError

        if isinstance(e, ParityGateError):
            # The report is the command's output even when the gate fails.
            print(json.dumps(e.report, sort_keys=True))
        print(f"fer-convert: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("fer-convert: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(report, sort_keys=True))
    return 0


def _options(args: argparse.Namespace, argv: Sequence[str] | None) -> ConvertOptions:
    """The conversion's options, with the command line as provenance."""
    from convert.pipeline import ConvertOptions

    words = list(sys.argv[1:] if argv is None else argv)
    return ConvertOptions(
        model=args.model,
        data=args.data,
        out=args.out,
        quantize=args.quantize,
        representative=args.representative,
        max_drop=args.max_drop,
        report=args.report,
        labels=args.labels,
        ferplus=args.ferplus,
        val_usage=args.val_usage,
        seed=args.seed,
        command=shlex.join(["fer-convert", *words]),
    )


if __name__ == "__main__":
    sys.exit(main())
