"""``fer-train compare``: several architectures, one protocol, one table.

Each architecture gets a run folder (``<runs-dir>/<arch>/``). A folder that already holds a
finished run (``model.keras`` + ``metrics.json``) is reused as it is; otherwise the architecture
is trained there with :func:`train.train.train_run` (resuming a half-finished folder). Every
model is then evaluated by :func:`train.evaluate.evaluate_model` on the *same* faces (same CSV,
split, labels and duplicate exclusion), so the table compares architectures and nothing else.

Outputs in ``--out``: ``eval/<arch>/`` (each model's ``metrics.json`` and plots),
``comparison.json``, ``comparison.md`` and ``comparison.png``. The three comparison files are
written last, each atomically, so their presence means the comparison finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import write_text_atomic
from edge.errors import ConfigError
from train.evaluate import evaluate_model, train_twin_rows
from train.metrics import HEADLINE, write_json
from train.plots import plot_comparison
from train.predict import open_model
from train.runfolder import RunFolder

log = logging.getLogger(__name__)

EXCLUDE_KEY = "excluding_train_duplicates"


@dataclass
class CompareOptions:
    """What ``fer-train compare`` does (saved into ``comparison.json``).

    Attributes:
        archs: Registered architecture names, in table order.
        data: FER2013 CSV (plain or ``.gz``).
        out: Output folder.
        runs_dir: Folder of per-architecture run folders (default ``<out>/runs``).
        labels: ``fer2013`` or ``ferplus``.
        ferplus: FERPlus vote CSV for ``labels="ferplus"``.
        ferplus_classes: 8 (with contempt) or 7.
        usage: Evaluation split; also the validation split of runs trained here.
        epochs: Maximum epochs of runs trained here.
        batch: Training batch size of runs trained here.
        limit: Training-image limit of runs trained here (smoke runs).
        seed: Random seed of runs trained here.
        exclude_duplicates: Also score without evaluation rows that have a Training twin.
        eval_batch: Faces per inference call.
    """

    archs: tuple[str, ...]
    data: str
    out: str
    runs_dir: str | None = None
    labels: str = "fer2013"
    ferplus: str | None = None
    ferplus_classes: int = 8
    usage: str = "PublicTest"
    epochs: int = 50
    batch: int = 64
    limit: int | None = None
    seed: int = 42
    exclude_duplicates: bool = False
    eval_batch: int = 256


def parse_archs(text: str) -> tuple[str, ...]:
    """Split ``a,b,c`` and check every name against the registry (duplicates dropped).

    Raises:
        ConfigError: for an empty list or an unknown name, listing the valid names.
    """
    from train.models import list_models

    names = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    valid = list_models()
    if not names:
        raise ConfigError(f"--archs is empty; valid names: {', '.join(valid)}")
    unknown = [a for a in names if a not in valid]
    if unknown:
        raise ConfigError(
            f"unknown architecture{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"valid names: {', '.join(valid)}"
        )
    return names


def _history_epochs(run: Path) -> int | None:
    h = run / "history.csv"
    if not h.exists():
        return None
    with h.open() as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)


def _is_finished(run: Path) -> bool:
    return (run / "model.keras").is_file() and (run / "metrics.json").is_file()


def _train(arch: str, run: Path, opts: CompareOptions) -> None:
    from train.options import TrainOptions
    from train.train import train_run

    resume = run.exists() and any(run.iterdir())
    log.info("%s: %s run in %s", arch, "resuming the" if resume else "training a new", run)
    train_run(
        TrainOptions(
            arch=arch,
            data=opts.data,
            out=str(run),
            labels=opts.labels,
            ferplus=opts.ferplus,
            ferplus_classes=opts.ferplus_classes,
            epochs=opts.epochs,
            batch=opts.batch,
            limit=opts.limit,
            seed=opts.seed,
            resume=resume,
            val_usage=opts.usage,
        )
    )


def _row(
    arch: str, run: Path, reused: bool, metrics: Mapping[str, Any], info: Mapping[str, Any]
) -> dict[str, Any]:
    from train.models import get_spec

    spec = get_spec(arch)
    folder = RunFolder(run)
    cfg = folder.read_config() or {}
    run_metrics = folder.read_metrics() or {}
    options = cfg.get("options", {}) if isinstance(cfg.get("options"), dict) else {}
    train_seconds = run_metrics.get("train_seconds")
    if train_seconds is None:
        train_seconds = (folder.read_state() or {}).get("train_seconds")
    row: dict[str, Any] = {
        "arch": arch,
        "kind": spec.kind,
        "paper_seed": spec.seed,
        "params": info.get("params"),
        **{k: metrics[k] for k in ("n", *HEADLINE)},
        "train_seconds": None if train_seconds is None else float(train_seconds),
        "epochs_run": _history_epochs(run),
        "seed": options.get("seed"),
        "train_limit": options.get("limit"),
        "oversample": options.get("oversample"),
        "run_dir": str(run),
        "reused": reused,
    }
    sub = metrics.get(EXCLUDE_KEY)
    if isinstance(sub, Mapping):
        row["n_without_train_twins"] = sub.get("n")
        row["accuracy_without_train_twins"] = sub.get("accuracy")
        row["macro_f1_without_train_twins"] = sub.get("macro_f1")
    return row


def compare_archs(opts: CompareOptions) -> dict[str, Any]:
    """Train or reuse, then evaluate every architecture under one protocol.

    Returns:
        The ``comparison.json`` document (``protocol``, ``options``, ``rows``).

    Raises:
        ConfigError: unknown architecture, or a reused run trained for other labels.
        DataError / ModelError: bad data or model files.
    """
    from train.data import load_labelled

    _check_archs(opts.archs)
    out = Path(opts.out)
    runs = Path(opts.runs_dir) if opts.runs_dir else out / "runs"
    faces = load_labelled(
        opts.data, opts.usage, opts.labels, opts.ferplus, opts.ferplus_classes
    ).require_nonempty(f"{opts.usage} split")
    exclude = train_twin_rows(opts.data, faces) if opts.exclude_duplicates else None
    t0 = time.time()
    rows = [_compare_one(arch, runs / arch, faces, exclude, opts) for arch in opts.archs]
    doc = {
        "protocol": _protocol(opts, faces, exclude),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()},
        "rows": rows,
        "seconds": round(time.time() - t0, 1),
    }
    write_comparison(doc, out)
    return doc


def _check_archs(archs: Sequence[str]) -> None:
    """Raise :class:`ConfigError` naming the valid architectures unless all of ``archs`` are."""
    from train.models import list_models

    valid = list_models()
    unknown = [a for a in archs if a not in valid]
    if unknown or not archs:
        raise ConfigError(
            f"unknown architectures {unknown or '(none given)'}; valid names: {', '.join(valid)}"
        )


def _compare_one(
    arch: str, run: Path, faces: Any, exclude: np.ndarray | None, opts: CompareOptions
) -> dict[str, Any]:
    """Reuse or train ``arch`` in ``run``, evaluate it on ``faces``; its table row.

    Raises:
        ConfigError: if a reused run was trained for other labels.
    """
    reused = _is_finished(run)
    if reused:
        log.info("%s: reusing finished run %s", arch, run)
    else:
        _train(arch, run, opts)
    cfg_labels = (RunFolder(run).read_config() or {}).get("labels")
    if cfg_labels is not None and list(cfg_labels) != list(faces.label_names):
        raise ConfigError(
            f"{run} was trained for labels {cfg_labels}, but this comparison evaluates "
            f"{list(faces.label_names)}; use another --runs-dir or matching --labels"
        )
    loaded = open_model(run / "model.keras")
    metrics = evaluate_model(
        loaded,
        faces,
        Path(opts.out) / "eval" / arch,
        exclude_rows=exclude,
        batch_size=opts.eval_batch,
        extra={"data": str(opts.data), "usage": opts.usage, "source": faces.source},
    )
    log.info("%s: accuracy %.4f macro-F1 %.4f", arch, metrics["accuracy"], metrics["macro_f1"])
    return _row(arch, run, reused, metrics, loaded.info)


def _protocol(opts: CompareOptions, faces: Any, exclude: np.ndarray | None) -> dict[str, Any]:
    """``comparison.json``'s ``protocol``: what every row was scored on, and how."""
    return {
        "data": str(opts.data),
        "split": opts.usage,
        "labels": opts.labels,
        "label_names": list(faces.label_names),
        "source": faces.source,
        "n": len(faces),
        "exclude_duplicates": opts.exclude_duplicates,
        "n_rows_with_train_twin": None if exclude is None else int(len(exclude)),
        "model_selection": (
            f"runs trained here pick their checkpoint on {opts.usage} validation accuracy "
            "(the train command's protocol), so these scores are slightly optimistic for "
            "every architecture alike; the sealed PrivateTest is the unbiased check"
        ),
    }


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not np.isfinite(v):
        return "–"
    return format(v, spec)


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.1f} min"


def comparison_markdown(doc: Mapping[str, Any]) -> str:
    """Render ``comparison.json`` as the Markdown table of ``comparison.md``."""
    p = doc["protocol"]
    rows: Sequence[Mapping[str, Any]] = doc["rows"]
    excl = bool(p.get("exclude_duplicates"))
    head = _table_head(excl)
    lines = [
        *_intro(p, excl),
        "| " + " | ".join(head) + " |",
        "|" + "|".join(" --- " for _ in head) + "|",
    ]
    best = max((r["accuracy"] for r in rows), default=None)
    for r in rows:
        bold = best is not None and r["accuracy"] == best and len(rows) > 1
        lines.append("| " + " | ".join(str(c) for c in _table_cells(r, bold, excl)) + " |")
    notes = _table_notes(rows)
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", "![comparison](comparison.png)", ""]
    return "\n".join(lines)


def _table_head(excl: bool) -> list[str]:
    head = [
        "architecture", "kind", "seed paper", "params", "accuracy", "macro P", "macro R",
        "macro F1", "macro AUC",
    ]  # fmt: skip
    if excl:
        head += ["accuracy w/o twins", "macro F1 w/o twins"]
    return head + ["train time", "epochs", "seed"]


def _intro(p: Mapping[str, Any], excl: bool) -> list[str]:
    """The lines above the table: the split, the twins left out, how models were selected."""
    lines = [
        "# Architecture comparison",
        "",
        f"Evaluation: `{Path(p['data']).name}` split **{p['split']}**, labels **{p['labels']}** "
        f"({', '.join(p['label_names'])}), n = {p['n']}.",
    ]
    if excl:
        lines += [
            "",
            f'"w/o twins": the same split without the {p["n_rows_with_train_twin"]} rows whose '
            "exact image is also in Training.",
        ]
    return lines + [
        "",
        "Every model is scored on the same faces by the same code (`fer-train evaluate`). "
        "Macro averages are over the classes present; AUC is one-vs-rest.",
        "",
        f"Model selection: {p['model_selection']}.",
        "",
    ]


def _table_cells(r: Mapping[str, Any], bold: bool, excl: bool) -> list[Any]:
    """One row's cells (the best accuracy in bold)."""
    acc = _fmt(r["accuracy"])
    cells = [
        f"`{r['arch']}`",
        r["kind"],
        r["paper_seed"].split("_")[0],
        _fmt(r["params"], ",d"),
        f"**{acc}**" if bold else acc,
        _fmt(r["macro_precision"]),
        _fmt(r["macro_recall"]),
        _fmt(r["macro_f1"]),
        _fmt(r["auc_macro"]),
    ]
    if excl:
        cells += [
            _fmt(r.get("accuracy_without_train_twins")),
            _fmt(r.get("macro_f1_without_train_twins")),
        ]
    return cells + [
        _fmt_seconds(r["train_seconds"]),
        _fmt(r["epochs_run"], "d"),
        _fmt(r["seed"], "d"),
    ]


def _table_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Which rows reused a run, and which were smoke runs on limited images."""
    notes = [
        f"- `{r['arch']}`: reused run `{r['run_dir']}`"
        + (f" (trained on at most {r['train_limit']} images)" if r.get("train_limit") else "")
        for r in rows
        if r["reused"]
    ]
    limited = [r["arch"] for r in rows if r.get("train_limit") and not r["reused"]]
    if limited:
        notes.append(f"- smoke runs (training images limited): {', '.join(limited)}")
    return notes


def write_comparison(doc: Mapping[str, Any], out: str | Path) -> None:
    """Write ``comparison.png``, ``comparison.md`` and, last, ``comparison.json`` into ``out``."""
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    plot_comparison(doc["rows"], o / "comparison.png")
    write_text_atomic(o / "comparison.md", comparison_markdown(doc))
    write_json(o / "comparison.json", doc)
