"""CNN vs CNN-LSTM, controlled: validation accuracy of runs at equal epochs, and one plot.

Reads the ``history.csv`` of each run folder and reports PublicTest accuracy at the given
epochs (1-based) and the best over the epochs both runs share, so a shorter run is compared
with the longer one at the same point of training, not with its end.

    python3 bench/ablation.py --runs docs/results/bagga_cnn_lstm3 docs/results/bagga_cnn3_nolstm \\
        --labels "Model3 (LSTMs), Adam 1e-3" "Model3 without LSTMs, Adam 1e-4" \\
        --out docs/perf/ablation.json --plot docs/img/cnn_vs_cnn_lstm.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def val_curve(run: Path) -> list[float]:
    """PublicTest accuracy after each epoch of ``run`` (its ``history.csv``)."""
    from train.plots import read_history

    return read_history(run / "history.csv")["val_accuracy"]


def main(argv: list[str] | None = None) -> int:
    """Write the JSON summary and the plot; print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders")
    ap.add_argument("--labels", nargs="+", help="one legend label per run (default: folder)")
    ap.add_argument("--at", type=int, nargs="*", default=[5, 10, 15, 20, 25], help="epochs")
    ap.add_argument("--out", type=Path, required=True, help="summary JSON")
    ap.add_argument("--plot", type=Path, required=True, help="PNG with every curve")
    args = ap.parse_args(argv)
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        ap.error(f"{len(labels)} --labels for {len(args.runs)} --runs")
    curves = [val_curve(r) for r in args.runs]  # read once, for the table and the plot
    shared = min(len(c) for c in curves)
    summary = {
        "shared_epochs": shared,
        "runs": [
            {
                "run": run.name,
                "label": label,
                "epochs": len(c),
                "at": {str(e): round(100 * c[e - 1], 2) for e in args.at if e <= len(c)},
                "best_within_shared": round(100 * max(c[:shared]), 2),
                "best": round(100 * max(c), 2),
            }
            for run, c, label in zip(args.runs, curves, labels, strict=True)
        ],
    }
    from train.plots import plot_val_accuracy

    plot_val_accuracy(
        dict(zip(labels, curves, strict=True)),
        args.plot,
        title="same trunk and head: with and without the LSTMs",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
