"""Classifier time per face as deployed: one face per call, through ``fer-edge run``'s classifier.

``docs/perf/latency.json`` times one interpreter invoke per architecture; a deployed setting
runs several (views x models) plus the averaging. This times ``DeployedClassifier.predict`` on
real PublicTest faces, one at a time, for a few settings, and for the default also its first
model alone (one invoke per face: the machine's speed that day). Pin it to one core:

    taskset -c 1 python3 bench/classifier_latency.py --out docs/perf/issue16/classifier_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: name -> ``[model]`` keys (``None``: the package default).
SETTINGS: dict[str, dict[str, object] | None] = {
    "default": None,
    "cnn + cnn_distilled, tta none": {"ensemble": ["cnn", "cnn_distilled"], "tta": "none"},
    "cnn + flip": {"bundled": "cnn", "tta": "flip"},
    "cnn, tta none": {"bundled": "cnn", "tta": "none"},
}


def _times(
    predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, warmup: int
) -> dict[str, float]:
    """p50/p95 milliseconds of ``predict(face[None])`` over ``faces`` after ``warmup`` calls."""
    for f in faces[:warmup]:
        predict(f[None])
    ts = []
    for f in faces[warmup:]:
        t0 = time.perf_counter()
        predict(f[None])
        ts.append(time.perf_counter() - t0)
    return {
        "ms_p50": round(1000 * float(np.median(ts)), 4),
        "ms_p95": round(1000 * float(np.quantile(ts, 0.95)), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=str(REPO.parent / "shared/data/fer2013/fer2013-train-publictest.csv.gz")
    )
    ap.add_argument("--faces", type=int, default=600)
    ap.add_argument("--out", type=Path, help="JSON file to write")
    args = ap.parse_args()

    from edge.classify.deployed import open_configured
    from edge.config import ModelConfig, load_config
    from train.data.fer2013 import load_fer2013

    faces = load_fer2013(args.data, "PublicTest").images[: args.faces]
    rows = []
    for name, keys in SETTINGS.items():
        cfg = load_config(None).model if keys is None else ModelConfig(**keys)  # type: ignore[arg-type]
        clf = open_configured(cfg)
        row = {
            "setting": name,
            "invokes_per_face": len(clf.members) * clf.describe()["views"],
        }
        row.update(_times(clf.predict, faces, 50))
        if keys is None:
            first = clf.members[0]
            row["first_model_predict"] = _times(first.predict, faces, 50)
        rows.append(row)
        clf.close()
        print(f"{name:32s} {row['ms_p50']:.3f} ms/face (p95 {row['ms_p95']:.3f})")
    result = {
        "command": "python3 " + " ".join(sys.argv),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "machine": platform.processor() or platform.machine(),
        "faces": len(faces) - 50,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
