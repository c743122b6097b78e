"""Sub-commands of ``fer-train`` beyond ``models`` (train, evaluate, compare)."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from edge.cli import add_command
from edge.contract import LABEL_SETS
from train.data.fer2013 import SPLITS
from train.options import CLASS_WEIGHTS

_Opts = TypeVar("_Opts")


def add_subcommands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the train/evaluate/compare sub-commands."""
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_compare_parser(sub)
    add_report_parser(sub)
    add_soup_parser(sub)
    add_calibrate_parser(sub)


def add_train_parser(sub: Any) -> None:
    """``fer-train train``: one leak-free training run into a run folder."""
    t = sub.add_parser("train", help="train one architecture (leak-free protocol)")
    t.add_argument("--arch", required=True, help="registered architecture (fer-train models)")
    t.add_argument("--data", required=True, help="FER2013 CSV (plain or .gz)")
    add_label_arguments(t)
    _add_fit_arguments(t)
    _add_target_arguments(t)
    _add_protocol_arguments(t)
    _add_teacher_arguments(t)
    add_distribute_arguments(t)
    t.add_argument("--out", required=True, help="run folder to create")
    t.set_defaults(func=_cmd_train)


def add_label_arguments(p: Any) -> None:
    """``--labels``, ``--ferplus``, ``--ferplus-classes``: which labels the FER2013 rows carry."""
    p.add_argument("--labels", default="fer2013", choices=sorted(LABEL_SETS), help="label source")
    p.add_argument("--ferplus", help="FERPlus vote CSV aligned with --data (for --labels ferplus)")
    p.add_argument(
        "--ferplus-classes", type=int, default=8, choices=(7, 8), help="8 with contempt, or 7"
    )


def _add_fit_arguments(t: Any) -> None:
    """How long and on how much ``fer-train train`` fits."""
    t.add_argument(
        "--epochs", type=int, default=50, help="maximum epochs (early stopping may end sooner)"
    )
    t.add_argument("--batch", type=int, default=64, help="batch size")
    t.add_argument(
        "--limit", type=int, help="use at most N training images (stratified; smoke runs)"
    )
    t.add_argument(
        "--oversample", action="store_true", help="random oversampling of the training split only"
    )
    t.add_argument("--seed", type=int, default=42, help="random seed")
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.keras")


def _add_target_arguments(t: Any) -> None:
    """The checkpoint's split, the optimiser and what the training targets are."""
    t.add_argument(
        "--val-usage",
        default="PublicTest",
        choices=SPLITS,
        help="split that selects the checkpoint: TrainVal (a fixed 10%% slice of Training, kept out "
        "of training; PublicTest is then only reported) or a Usage value",
    )
    t.add_argument("--no-augment", action="store_true", help="disable training augmentation")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--patience", type=int, default=7, help="early-stopping patience (epochs)")
    t.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing")
    t.add_argument("--soft-labels", action="store_true", help="train on FERPlus vote distributions")
    t.add_argument(
        "--ferplus-mix",
        type=float,
        default=0.0,
        metavar="W",
        help="train on (1-W) * FER2013 one-hot + W * FERPlus vote shares (needs --ferplus; "
        "W <= 0.5 keeps the FER2013 label the argmax)",
    )
    t.add_argument("--classes", help="comma-separated class subset, e.g. angry,happy,neutral,sad")
    t.add_argument(
        "--class-weight",
        default="none",
        choices=CLASS_WEIGHTS,
        help="weight each face's loss by its class's rarity: sqrt = (n_max/n_c)^0.5, balanced = "
        "n_max/n_c, normalised to mean 1 (rare classes such as disgust are said more often)",
    )


def _add_protocol_arguments(t: Any) -> None:
    """Folds, protocol, learning-rate schedule, erasing and warm restarts."""
    t.add_argument(
        "--folds",
        type=int,
        help="K-fold cross-validation inside Training (seed 003); each exact-duplicate group "
        "and CK+ subject stays inside one fold",
    )
    t.add_argument(
        "--protocol",
        default="leak-free",
        choices=("leak-free", "seed002-leaky"),
        help="leak-free (default), or seed 002's oversample-before-split protocol, reproduced "
        "only to measure its leak",
    )
    t.add_argument(
        "--schedule",
        default="plateau",
        choices=("plateau", "cosine"),
        help="learning-rate schedule: ReduceLROnPlateau (seed 004) or cosine decay to 0 over "
        "--epochs",
    )
    t.add_argument(
        "--erasing",
        type=float,
        default=0.0,
        help="random-erasing probability in the training augmentation (0 = off)",
    )
    t.add_argument(
        "--init-from",
        help="start from the weights of this .keras model of the same --arch (a warm restart; "
        "its run's provenance is recorded)",
    )


def _add_teacher_arguments(t: Any) -> None:
    """Knowledge distillation (:mod:`train.teachers`)."""
    t.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="MODEL",
        help="distil from this .keras or .tflite model of a finished leak-free run with the same "
        "labels and validation split (repeat for an ensemble of teachers): targets become "
        "(1-W) * labels + W * the teachers' mean output on the same augmented batch",
    )
    t.add_argument(
        "--teacher-tta",
        default="none",
        choices=("none", "flip"),
        help="teachers also see the mirrored batch and their outputs are averaged (with --teacher)",
    )
    t.add_argument(
        "--teacher-mix",
        type=float,
        default=0.5,
        metavar="W",
        help="weight W of the teacher's output in the targets (with --teacher)",
    )
    t.add_argument(
        "--teacher-temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="soften the teacher's output as softmax(logits / T) (with --teacher)",
    )


def add_distribute_arguments(t: Any) -> None:
    """``--distribute``, ``--per-replica-batch``, ``--precision``, ``--backup-every``
    (:mod:`train.distribute`)."""
    from train.distribute import PRECISIONS, STRATEGIES

    t.add_argument(
        "--distribute",
        choices=STRATEGIES,
        help="tf.distribute strategy: mirrored (every local GPU) or multiworker (the cluster in "
        "TF_CONFIG; every worker runs the same command). --batch stays the global batch",
    )
    t.add_argument(
        "--per-replica-batch",
        action="store_true",
        help="with --distribute: --batch is per replica, the global batch is batch x replicas "
        "and --lr is scaled by replicas (linear scaling rule)",
    )
    t.add_argument(
        "--precision",
        default="float32",
        choices=PRECISIONS,
        help="Keras mixed precision policy; model.keras is exported in float32 at the end",
    )
    t.add_argument(
        "--backup-every",
        type=int,
        metavar="N",
        help="back up weights and optimizer every N steps (RUN/backup); --resume after a crash "
        "continues from the last backup, mid-epoch",
    )


def command_line(args: argparse.Namespace) -> str:
    """The exact ``fer-train`` command, for a run folder's provenance."""
    return shlex.join(["fer-train", *getattr(args, "argv", [])])


def class_subset(value: str | None) -> tuple[str, ...] | None:
    """``--classes a,b,c`` as a tuple of names (None without the flag)."""
    return tuple(c.strip() for c in value.split(",")) if value else None


def options_from(cls: type[_Opts], args: argparse.Namespace, **given: Any) -> _Opts:
    """An options dataclass filled from the same-named flags; ``given`` values win.

    One place maps flags to options, so a flag and its option cannot drift apart by hand.
    """
    flags = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}  # type: ignore[arg-type]
    return cls(**{**flags, **given})


def _cmd_train(args: argparse.Namespace) -> int:
    from train.data.augment import NONE, AugmentConfig
    from train.options import TrainOptions
    from train.train import train_run

    opts = options_from(
        TrainOptions,
        args,
        augment=NONE if args.no_augment else AugmentConfig(erasing=args.erasing),
        classes=class_subset(args.classes),
        command=command_line(args),
    )
    metrics = train_run(opts)
    if "worker" in metrics:  # a multiworker run's non-chief process
        print(f"{args.arch}: worker {metrics['worker']} done; the chief wrote {args.out}")
        return 0
    split = opts.val_usage if opts.protocol == "leak-free" else "seed002 random test split"
    if "accuracy" in metrics:
        print(
            f"{args.arch}: {split} accuracy {metrics['accuracy']:.4f} "
            f"macro-F1 {metrics.get('macro_f1', float('nan')):.4f} -> {args.out}"
        )
    else:
        print(
            f"{args.arch}: {args.folds}-fold accuracy {metrics.get('accuracy_mean')} -> {args.out}"
        )
    return 0


# ---- evaluate / compare ---------------------------------------------------------------------


def add_evaluate_parser(sub: Any) -> None:
    """``fer-train evaluate``: score a ``.keras`` or ``.tflite`` model on a FER2013 split."""
    e = add_command(
        sub, "evaluate", _cmd_evaluate, "score a .keras or .tflite model on a FER2013 split"
    )
    e.add_argument(
        "model",
        nargs="?",
        help="model file: .keras (Keras 3) or .tflite (run through edge); omit with --deployed",
    )
    e.add_argument(
        "--deployed",
        action="store_true",
        help="evaluate the face classifier exactly as 'fer-edge run' builds it from --config "
        "(default: the package defaults): its model(s), test-time augmentation, averaging and "
        "calibration; adds ms_per_face (one thread per face, as on the device)",
    )
    e.add_argument(
        "--config", type=Path, help="fer-edge TOML config whose [model] section --deployed uses"
    )
    e.add_argument("--data", required=True, help="FER2013 CSV (plain or .gz)")
    e.add_argument(
        "--usage", default="PublicTest", help="split(s) to score, comma-separated (Usage values)"
    )
    add_label_arguments(e)
    e.add_argument("--classes", help="class subset the model was trained on, e.g. angry,happy")
    _add_exclude_duplicates(e)
    e.add_argument("--batch", type=int, default=256, help="faces per inference call")
    e.add_argument("--out", required=True, help="output folder (metrics.json + PNGs)")


def _add_exclude_duplicates(p: Any) -> None:
    """``--exclude-duplicates``: a second score without the rows that have a Training twin."""
    p.add_argument(
        "--exclude-duplicates",
        action="store_true",
        help="also score without the rows whose exact image is in Training",
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a model on a FER2013/FERPlus split: metrics.json, confusion.png, roc.png in --out,
    and a one-line summary."""
    from train.evaluate import evaluate_model, train_twin_rows
    from train.metrics import summary_line
    from train.predict import check_model_labels

    # Open the model first: a bad model file fails in a second, not after parsing the CSV.
    loaded = _evaluated_model(args)
    usages = [u.strip() for u in args.usage.split(",") if u.strip()]
    faces = _evaluated_faces(args, usages)
    check_model_labels(loaded.info, faces.label_names)
    exclude = train_twin_rows(args.data, faces) if args.exclude_duplicates else None
    metrics = evaluate_model(
        loaded,
        faces,
        args.out,
        exclude_rows=exclude,
        batch_size=args.batch,
        extra={
            "data": str(args.data),
            "usage": "+".join(usages),
            "label_source": args.labels,
            "source": faces.source,
        },
    )
    print(summary_line(metrics))
    return 0


def _evaluated_faces(args: argparse.Namespace, usages: list[str]) -> Any:
    """The FER2013 rows of ``usages`` with ``--labels`` (and ``--classes``) applied.

    Raises:
        DataError: if ``--usage`` names nothing or the split is empty.
    """
    from edge.errors import DataError
    from train.data import load_labelled, select_classes

    if not usages:
        raise DataError(f"--usage is empty; valid: {', '.join(SPLITS)}")
    faces = load_labelled(args.data, usages, args.labels, args.ferplus, args.ferplus_classes)
    if args.classes:
        faces = select_classes(faces, class_subset(args.classes))
    faces.require_nonempty(f"{args.usage} split")
    return faces


def _evaluated_model(args: argparse.Namespace) -> Any:
    """The positional model, or with ``--deployed`` the classifier ``fer-edge run`` would use."""
    from edge.errors import ConfigError
    from train.predict import open_deployed, open_model

    if args.deployed:
        if args.model:
            raise ConfigError(
                f"--deployed evaluates the models of --config (or the defaults), not {args.model}; "
                "drop one of them"
            )
        return open_deployed(args.config)
    if args.config:
        raise ConfigError("--config is only used with --deployed")
    if not args.model:
        raise ConfigError("give a model file, or --deployed [--config TOML]")
    return open_model(args.model)


def add_compare_parser(sub: Any) -> None:
    """``fer-train compare``: train or reuse several architectures and evaluate them alike."""
    c = add_command(
        sub,
        "compare",
        _cmd_compare,
        "train (or reuse) several architectures and compare them under one protocol",
    )
    c.add_argument("--archs", required=True, help="comma-separated architectures")
    c.add_argument("--data", required=True, help="FER2013 CSV (plain or .gz)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--runs-dir", help="folder of run folders <arch>/ (default OUT/runs)")
    c.add_argument("--usage", default="PublicTest", help="evaluation (and validation) split")
    add_label_arguments(c)
    c.add_argument("--epochs", type=int, default=50, help="maximum epochs of runs trained here")
    c.add_argument("--batch", type=int, default=64, help="training batch size")
    c.add_argument("--limit", type=int, help="training-image limit of runs trained here (smoke)")
    c.add_argument("--seed", type=int, default=42, help="random seed of runs trained here")
    _add_exclude_duplicates(c)
    c.add_argument("--eval-batch", type=int, default=256, help="faces per inference call")


def _cmd_compare(args: argparse.Namespace) -> int:
    """For each --archs name reuse RUNS_DIR/<arch>/ if it holds a finished run, else train it
    there; evaluate all on the same split; write comparison.json, comparison.md and
    comparison.png in --out."""
    from pathlib import Path

    from train.compare import CompareOptions, compare_archs, parse_archs

    archs = parse_archs(args.archs)  # unknown names fail before any data is read
    doc = compare_archs(options_from(CompareOptions, args, archs=archs))
    for r in doc["rows"]:
        print(
            f"{r['arch']:24s} acc {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
            f"params {r['params'] or 0:>9,d}"
        )
    print(f"-> {Path(args.out) / 'comparison.md'}")
    return 0


def add_report_parser(sub: Any) -> None:
    """``fer-train report``: collect run folders into docs/results and the RESULTS.md table."""
    r = sub.add_parser("report", help="collect finished runs into docs/results and RESULTS.md")
    r.add_argument(
        "--runs", nargs="+", required=True, type=Path, help="run folders, or folders of run folders"
    )
    r.add_argument("--out", required=True, type=Path, help="where to copy metrics/histories/plots")
    r.add_argument("--markdown", type=Path, help="Markdown file whose results table to update")
    r.add_argument("--latency", type=Path, help="latency JSON from bench/latency.py")
    r.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from train.report import write_report
    from train.runfolder import RunFolder

    def is_run(p: Path) -> bool:
        return RunFolder(p).config_path.is_file()

    runs: list[Path] = []
    for p in args.runs:
        if is_run(p):
            runs.append(p)
        elif p.is_dir():
            runs.extend(sorted(c for c in p.iterdir() if is_run(c)))
    rows = write_report(runs, args.out, args.markdown, args.latency)
    for r in rows:
        print(f"{r['arch']:24s} {r['run']:28s} acc {r['float']['accuracy']:.4f}")
    return 0


def add_soup_parser(sub: Any) -> None:
    """``fer-train soup``: average the weights of checkpoints of one architecture."""
    s = add_command(
        sub,
        "soup",
        _cmd_soup,
        "average the weights of several checkpoints of one architecture (a model soup)",
    )
    s.add_argument("models", nargs="+", help="model.keras files of finished runs (same --arch)")
    s.add_argument("--data", required=True, help="FER2013 CSV (plain or .gz)")
    s.add_argument("--method", default="greedy", choices=("greedy", "uniform"), help="recipe")
    s.add_argument(
        "--val-usage",
        default="PublicTest",
        choices=SPLITS,
        help="split the soup is selected on (TrainVal keeps PublicTest a pure report)",
    )
    s.add_argument("--out", required=True, help="run folder to create")


def _cmd_soup(args: argparse.Namespace) -> int:
    """Average the weights of finished leak-free runs of one architecture (a first cycle and
    its warm restarts) into a new run folder, evaluated like a trained run. greedy adds
    checkpoints in order of validation accuracy and keeps each only if the soup does not get
    worse."""
    from train.soup import SoupOptions, soup_run

    metrics = soup_run(options_from(SoupOptions, args, command=command_line(args)))
    kept = metrics["soup"]["kept"]
    print(
        f"soup of {len(kept)}/{len(args.models)} checkpoints: {args.val_usage} accuracy "
        f"{metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f} -> {args.out}"
    )
    return 0


def add_calibrate_parser(sub: Any) -> None:
    """``fer-train calibrate``: fit the deployed classifier's temperature on TrainVal."""
    c = add_command(
        sub,
        "calibrate",
        _cmd_calibrate,
        "fit the deployed classifier's calibration temperature on the TrainVal slice",
    )
    c.add_argument(
        "--config", type=Path, help="fer-edge TOML config ([model] section; default: defaults)"
    )
    c.add_argument("--data", required=True, type=Path, help="FER2013 CSV (plain or .gz)")
    add_label_arguments(c)
    c.add_argument("--out", required=True, type=Path, help="calibrated .tflite to write")
    c.add_argument("--report", type=Path, help="folder for calibration.json and reliability.png")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    """Run the face classifier exactly as 'fer-edge run' builds it from --config (models,
    test-time augmentation, averaging) on the validation slice of Training (TrainVal; never
    PublicTest), fit one temperature that minimises the log-loss, and write the first model
    with the temperature (and the setting it was fitted for) in its metadata to --out, plus
    --report DIR/calibration.json and reliability.png. Every model must have been trained with
    --val-usage TrainVal. --labels ferplus fits the confidence to FERPlus majority labels."""
    from train.calibration import run_calibration

    cal = run_calibration(
        args.config,
        args.data,
        args.out,
        args.report,
        command=command_line(args),
        labels=(args.labels, args.ferplus, args.ferplus_classes),
    )
    print(
        f"temperature {cal['temperature']:.4f}: TrainVal ECE {cal['ece_before']:.4f} -> "
        f"{cal['ece_after']:.4f}, NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f} -> "
        f"{args.out}"
    )
    return 0
