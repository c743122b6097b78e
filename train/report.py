"""``fer-train report``: collect finished run folders into ``docs/results/`` and render the
results table of ``docs/RESULTS.md`` (issue 5).

A run folder (from ``fer-train train``) is reported when ``config.json`` says ``complete``.
Optional companions, made by the documented commands:

- ``RUN/int8.tflite`` + ``RUN/int8.json``: ``fer-convert RUN/model.keras ... -o RUN/int8.tflite``
- ``RUN/int8_eval/metrics.json``: ``fer-train evaluate RUN/int8.tflite ... --out RUN/int8_eval``
- a latency JSON (``bench/latency.py``) with ``face_ms_p50`` per architecture.

Only small files are copied (JSON, CSV, PNG): never weights. The table is written between
``<!-- results:begin -->`` and ``<!-- results:end -->`` in the Markdown file, so the narrative
around it stays hand-written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.errors import DataError
from train.evaluate import write_json

#: What each seed paper claims for its own model (accuracy, %), quoted in the table.
SEED_CLAIMS: dict[str, str] = {
    "savitri_cnn": "63.25 (seed 001, FER2013 test)",
    "savitri_cnn_lstm": "46.82 (seed 001, FER2013 test)",
    "bagga_cnn1": "74.65 (seed 002, oversampled before split)",
    "bagga_cnn_lstm2": "79.79 (seed 002, oversampled before split)",
    "bagga_cnn_lstm3": "85.11 (seed 002, oversampled before split)",
    "munsarif_res_bilstm": "99.96 FERPlus / 100 CK+ (seed 003, 10-fold CV)",
    "mahastama_stacked_cnn": "79.59 val, 4 classes, combined data (seed 004)",
    "feredge_sepnet": "(ours)",
}
COPY_SUFFIXES = {".json", ".csv", ".png"}
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable JSON: {e}") from None


def _pct(x: Any) -> str:
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "–"


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) else "–"


def collect_run(run: Path, latency: dict[str, float]) -> dict[str, Any] | None:
    """One table row from a run folder, or None if the run is not complete."""
    cfg = _load(run / "config.json")
    metrics = _load(run / "metrics.json")
    if not cfg or cfg.get("status") != "complete" or not metrics or "accuracy" not in metrics:
        return None
    arch = cfg["arch"]
    int8_meta = _load(run / "int8.json") or {}
    int8_eval = _load(run / "int8_eval" / "metrics.json") or {}
    parity = int8_meta.get("parity") or int8_meta.get("metadata", {}).get("parity") or {}
    tfl = run / "int8.tflite"
    excl = metrics.get("excluding_train_duplicates") or {}
    return {
        "arch": arch,
        "run": run.name,
        "seed": cfg.get("seed_paper"),
        "kind": cfg.get("kind"),
        "protocol": (cfg.get("options") or {}).get("protocol", "leak-free"),
        "labels": "ferplus" if "contempt" in cfg.get("labels", []) else "fer2013",
        "params": (metrics.get("model") or {}).get("params") or metrics.get("params"),
        "float": {k: metrics.get(k) for k in ("accuracy", "macro_f1", "auc_macro")},
        "float_excl_twins": {k: excl.get(k) for k in ("accuracy", "macro_f1")}
        | {"n": excl.get("n")},
        "int8": {
            "accuracy": int8_eval.get("accuracy", parity.get("converted_accuracy")),
            "macro_f1": int8_eval.get("macro_f1", parity.get("converted_macro_f1")),
            "auc_macro": int8_eval.get("auc_macro"),
        },
        "int8_drop_pp": parity.get("drop_pp"),
        "tflite_bytes": tfl.stat().st_size if tfl.is_file() else None,
        "latency_ms": latency.get(arch),
        "train_seconds": metrics.get("train_seconds"),
        "epochs": _epochs(run),
        "n": metrics.get("n"),
        "claim": SEED_CLAIMS.get(arch, ""),
        "command": cfg.get("command"),
        "commit": cfg.get("commit"),
    }


def _epochs(run: Path) -> int | None:
    hist = run / "history.csv"
    if not hist.is_file():
        return None
    return max(0, sum(1 for _ in hist.open()) - 1)


def markdown_table(rows: Iterable[dict[str, Any]]) -> str:
    """The results table (one row per run)."""
    head = (
        "| architecture | seed | kind | params | PublicTest acc % (float / int8) | macro-F1 "
        "(float / int8) | macro-AUC (float / int8) | int8 drop pp | acc % w/o Training twins "
        "| .tflite KB | ms/face (1 thread) | train time | epochs | seed's own claim |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    )
    lines = []
    for r in rows:
        f, q = r["float"], r["int8"]
        kb = f"{r['tflite_bytes'] / 1024:.0f}" if r["tflite_bytes"] else "–"
        t = f"{r['train_seconds'] / 60:.0f} min" if r["train_seconds"] else "–"
        lines.append(
            f"| `{r['arch']}`{' (' + r['protocol'] + ')' if r['protocol'] != 'leak-free' else ''} "
            f"| {r['seed']} | {r['kind']} | {r['params']:,} "
            f"| {_pct(f['accuracy'])} / {_pct(q['accuracy'])} "
            f"| {_num(f['macro_f1'])} / {_num(q['macro_f1'])} "
            f"| {_num(f['auc_macro'])} / {_num(q['auc_macro'])} "
            f"| {_num(r['int8_drop_pp'], '{:.2f}')} | {_pct(r['float_excl_twins']['accuracy'])} "
            f"| {kb} | {_num(r['latency_ms'])} | {t} | {r['epochs'] or '–'} | {r['claim']} |"
        )
    return head + "\n".join(lines) + "\n"


def write_report(
    runs: list[Path], out: Path, markdown: Path | None, latency_json: Path | None
) -> list[dict[str, Any]]:
    """Collect ``runs`` into ``out`` (small files) and update the table in ``markdown``.

    Raises:
        DataError: if no run folder is complete or a JSON file is unreadable.
    """
    latency: dict[str, float] = {}
    if latency_json is not None:
        lat = _load(latency_json) or {}
        latency = {m["arch"]: m["face_ms_p50"] for m in lat.get("models", []) if "face_ms_p50" in m}
    rows = []
    for run in runs:
        row = collect_run(run, latency)
        if row is None:
            continue
        rows.append(row)
        dest = out / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(run.rglob("*")):
            if f.is_file() and f.suffix in COPY_SUFFIXES and f.name != "state.json":
                target = dest / f.relative_to(run)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
    if not rows:
        raise DataError(f"no complete run folder among {[str(r) for r in runs]}")
    rows.sort(key=lambda r: -(r["float"]["accuracy"] or 0.0))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", rows)
    if markdown is not None:
        table = markdown_table(rows)
        text = markdown.read_text() if markdown.exists() else f"# Results\n\n{BEGIN}\n{END}\n"
        if BEGIN not in text or END not in text:
            text += f"\n{BEGIN}\n{END}\n"
        pre, rest = text.split(BEGIN, 1)
        _, post = rest.split(END, 1)
        markdown.write_text(f"{pre}{BEGIN}\n{table}{END}{post}")
    return rows
