"""Why the flatten->dense CNNs of seeds 001/002 collapse to the majority class with Adam 1e-3.

Trains a fresh model for a couple of epochs on the first N FER2013 Training faces and counts
the units of its dense ``fc`` layer that are still active (output > 0 for at least one of 512
faces, training-mode forward pass) for each (seed, learning rate, batch) combination. A layer
whose units are all dead outputs a constant, so the model predicts one class.

    python3 bench/dead_units.py --csv ../shared/data/fer2013/fer2013-train-publictest.csv.gz \\
        --arch bagga_cnn1 --lr 1e-3 1e-4 --seeds 1 7 42
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per combination; return 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True, help="FER2013 CSV (plain or .gz)")
    ap.add_argument(
        "--arch", default="bagga_cnn1", help="registered architecture with an 'fc' layer"
    )
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3, 1e-4], help="Adam learning rates")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 7, 42], help="random seeds")
    ap.add_argument("--batch", type=int, nargs="+", default=[64], help="batch sizes")
    ap.add_argument("--n", type=int, default=4000, help="training faces")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per combination")
    args = ap.parse_args(argv)

    import keras
    import numpy as np

    from train.data import load_fer2013
    from train.models import create_model

    fs = load_fer2013(args.csv, "Training")
    x = fs.images[: args.n, ..., None].astype("float32")
    y = np.eye(fs.num_classes, dtype="float32")[fs.labels[: args.n]]
    for lr in args.lr:
        for batch in args.batch:
            for seed in args.seeds:
                keras.utils.set_random_seed(seed)
                model = create_model(args.arch, num_classes=fs.num_classes)
                fc = keras.Model(model.input, model.get_layer("fc").output)
                model.compile(
                    optimizer=keras.optimizers.Adam(lr),
                    loss="categorical_crossentropy",
                    metrics=["accuracy"],
                )
                alive0 = int((fc(x[:512], training=True).numpy().max(0) > 0).sum())
                hist = model.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0)
                act = fc(x[:512], training=True).numpy()
                preds = np.bincount(model.predict(x[:512], verbose=0).argmax(1), minlength=7)
                print(
                    json.dumps(
                        {
                            "arch": args.arch,
                            "lr": lr,
                            "batch": batch,
                            "seed": seed,
                            "fc_units": int(act.shape[1]),
                            "alive_at_init": alive0,
                            "alive_after": int((act.max(0) > 0).sum()),
                            "train_accuracy": [round(a, 4) for a in hist.history["accuracy"]],
                            "classes_predicted": int((preds > 0).sum()),
                        }
                    ),
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
