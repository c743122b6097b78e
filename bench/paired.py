"""Two deployed settings on the same faces: who is right where the other is wrong.

Accuracy differences of a point on a few thousand faces can be noise; the faces both settings
get right or both get wrong say nothing about which is better. This counts the discordant faces
(right for one setting only) and gives the exact two-sided McNemar (sign) test p-value on them.
Settings are names of ``bench/deployed.py``'s table or ``NAME=CONFIG.toml``; faces are a FER2013
split (``--data``/``--usage``) or an image folder (``--folder``, e.g. CK+48, whose images are
not independent: three frames per sequence, so its p-value is optimistic).

    python3 bench/paired.py --a "cnn + flip" --b "default (cnn + cnn_trainval + flip)" \\
        --data ../shared/data/fer2013/fer2013-train-publictest.csv.gz --usage PublicTest --out p.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from math import comb
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from deployed import SETTINGS, _faces  # noqa: E402


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: discordant counts under a fair coin."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def _correct(setting: str, faces: Any, work: Path) -> Any:
    """Per-face correctness of one setting (built by the device's code path)."""
    import numpy as np

    from edge.classify.deployed import open_configured
    from edge.config import load_config

    name, sep, path = setting.rpartition("=")
    if sep:
        cfg = load_config(Path(path))
    else:
        if setting not in SETTINGS:
            raise SystemExit(f"unknown setting {setting!r}; valid: {list(SETTINGS)} or NAME=TOML")
        toml = work / f"{abs(hash(setting))}.toml"
        toml.write_text(f"[model]\n{SETTINGS[setting]}\n")
        cfg = load_config(toml)
    clf = open_configured(cfg.model)
    try:
        return clf.predict(faces.images).argmax(axis=1) == np.asarray(faces.labels)
    finally:
        clf.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="first setting (name or NAME=CONFIG.toml)")
    p.add_argument("--b", required=True, help="second setting")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="FER2013 CSV")
    src.add_argument("--folder", type=Path, help="image folder <root>/<class>/*.png (CK+48)")
    p.add_argument("--usage", default="PublicTest", help="FER2013 split to score")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = p.parse_args()
    faces = _faces(args)
    with tempfile.TemporaryDirectory() as tmp:
        ra, rb = (_correct(s, faces, Path(tmp)) for s in (args.a, args.b))
    only_a, only_b = int((ra & ~rb).sum()), int((~ra & rb).sum())
    row = {
        "faces": f"folder {args.folder}" if args.folder else f"{args.data.name} {args.usage}",
        "n": len(ra),
        "a": args.a,
        "b": args.b,
        "accuracy_a": float(ra.mean()),
        "accuracy_b": float(rb.mean()),
        "only_a_right": only_a,
        "only_b_right": only_b,
        "mcnemar_p": mcnemar_p(only_a, only_b),
    }
    print(row)
    from train.metrics import write_json

    write_json(args.out, {"command": " ".join(sys.argv), **row})
    return 0


if __name__ == "__main__":
    sys.exit(main())
