"""The classifier as deployed, setting by setting: accuracy, macro-F1, ECE and ms per face.

Each setting is a ``[model]`` section of a fer-edge config; each is scored with exactly what
``fer-train evaluate --deployed`` runs (:func:`train.evaluate.open_deployed` and
:func:`train.evaluate.evaluate_model`, i.e. the device's code path, face by face on one
interpreter thread). Pin it to one core for the ms/face column:

    taskset -c 1 python3 bench/deployed.py --data ../shared/data/fer2013/fer2013-train-publictest.csv.gz \\
        --usage PublicTest --out docs/perf/deployed.json

The last setting is the package default (an empty ``[model]`` section). A setting is selected
on TrainVal (the validation slice of Training) only for models trained without it; the bundled
``cnn`` and ``cnn_lstm`` trained on all of Training, so their rows here are reported on
PublicTest for information and the choice between them is stated in docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: name -> the [model] section of its config (TOML).
SETTINGS: dict[str, str] = {
    "cnn": 'bundled = "cnn"\ntta = "none"',
    "cnn + flip": 'bundled = "cnn"\ntta = "flip"',
    "cnn + flip_shift": 'bundled = "cnn"\ntta = "flip_shift"',
    "cnn_lstm": 'bundled = "cnn_lstm"\ntta = "none"',
    "cnn + cnn_lstm": 'ensemble = ["cnn", "cnn_lstm"]\ntta = "none"',
    "cnn + cnn_lstm + flip": 'ensemble = ["cnn", "cnn_lstm"]\ntta = "flip"',
    "cnn_trainval + flip": 'bundled = "cnn_trainval"\ntta = "flip"',
    "cnn + cnn_trainval": 'ensemble = ["cnn", "cnn_trainval"]\ntta = "none"',
    "cnn + cnn_trainval + flip": 'ensemble = ["cnn", "cnn_trainval"]\ntta = "flip"',
    "cnn_distilled + flip": 'bundled = "cnn_distilled"\ntta = "flip"',
    "cnn + cnn_distilled + flip": 'ensemble = ["cnn", "cnn_distilled"]\ntta = "flip"',
    "default": "",
}


def score(name: str, section: str, faces: Any, usage: str, work: Path) -> dict[str, Any]:
    """Evaluate one setting on ``faces`` (a FaceSet); return its row.

    ``section`` is the body of a ``[model]`` table, or ``@PATH`` for a whole fer-edge config
    file (a model trained in ``runs/``, say), used as it is.
    """
    from train.evaluate import evaluate_model
    from train.predict import open_deployed

    if section.startswith("@"):
        cfg = Path(section[1:])
        section = cfg.read_text()
    else:
        cfg = work / f"{len(list(work.iterdir()))}.toml"
        cfg.write_text(f"[model]\n{section}\n")
    loaded = open_deployed(cfg)
    m = evaluate_model(loaded, faces, work / f"eval-{cfg.stem}")
    return {
        "setting": name,
        "model_section": section,
        "usage": usage,
        "n": m["n"],
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "ece": m["ece"],
        "ms_per_face": m["ms_per_face"],
        "temperature": m["deployed"]["temperature"],
        "calibrated": m["deployed"]["calibrated"],
        # Where the errors are: one rare class can decide a test set (CK+48's disgust is a
        # fifth of its faces, FER2013's 1.6 %).
        "recall": {
            k: None if v["recall"] is None else round(v["recall"], 4)  # None: class absent
            for k, v in m["per_class"].items()
        },
        "confusion": m["confusion"],
    }


def _faces(args: argparse.Namespace) -> Any:
    """The FaceSet to score: a FER2013 split, or an image folder with FER2013's label order."""
    if args.folder is not None:
        from edge.contract import FER2013_LABELS
        from train.data.folders import load_image_folder

        return load_image_folder(args.folder, FER2013_LABELS)
    from train.data.fer2013 import load_fer2013

    return load_fer2013(args.data, args.usage)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="FER2013 CSV")
    src.add_argument(
        "--folder",
        type=Path,
        help="an image folder <root>/<class>/*.png instead, e.g. CK+48 (an independent test: "
        "classes outside the model's labels, such as contempt, are skipped)",
    )
    p.add_argument("--usage", default="PublicTest", help="split to score (PublicTest, TrainVal)")
    p.add_argument("--only", help="comma-separated setting names (default: all)")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=TOML",
        help="an extra setting: a name and a fer-edge config file (its [model] section is used)",
    )
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = p.parse_args()
    for extra in args.setting:
        name, sep, path = extra.rpartition("=")
        if not sep or not Path(path).is_file():
            p.error(f"--setting {extra!r}: expected NAME=CONFIG.toml with an existing file")
        SETTINGS[name] = f"@{path}"
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
    elif args.setting:  # only the extra settings (their names may hold commas)
        names = [extra.rpartition("=")[0] for extra in args.setting]
    else:
        names = list(SETTINGS)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        p.error(f"unknown settings {unknown}; valid: {list(SETTINGS)}")
    faces = _faces(args)  # once: every setting scores the same faces
    if args.folder is not None:
        args.usage = f"folder {args.folder.name}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            rows.append(score(n, SETTINGS[n], faces, args.usage, Path(tmp)))
            r = rows[-1]
            print(
                f"{n:24s} acc {100 * r['accuracy']:.2f} %  macro-F1 {r['macro_f1']:.3f}  "
                f"ECE {r['ece']:.3f}  {r['ms_per_face']:.3f} ms/face",
                flush=True,
            )
    from train.metrics import write_json

    write_json(args.out, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
