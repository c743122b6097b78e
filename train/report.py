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

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic
from edge.errors import DataError
from train.metrics import write_json
from train.runfolder import read_json_object

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
    "bagga_cnn3_nolstm": "(control: Model3 without its LSTMs; not in the paper)",
}
COPY_SUFFIXES = {".json", ".csv", ".png"}
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
LEAKY_BEGIN, LEAKY_END = "<!-- leaky:begin -->", "<!-- leaky:end -->"
TWINS_BEGIN, TWINS_END = "<!-- twins:begin -->", "<!-- twins:end -->"


def _pct(x: Any) -> str:
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "–"


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) else "–"


def collect_run(run: Path, latency: dict[str, float]) -> dict[str, Any] | None:
    """One table row from a run folder, or None if the run is not complete."""
    cfg = read_json_object(run / "config.json")
    metrics = read_json_object(run / "metrics.json")
    if not cfg or cfg.get("status") != "complete" or not metrics or "accuracy" not in metrics:
        return None
    arch = cfg["arch"]
    excl = metrics.get("excluding_train_duplicates") or {}
    data = cfg.get("data") or {}
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
        **_companion_columns(run),
        "latency_ms": latency.get(arch),
        **_cost_columns(run, cfg, metrics),
        "n": metrics.get("n"),
        "n_excluded": excl.get("n_excluded"),
        "test_fraction_seen_in_training": data.get("test_fraction_seen_in_training"),
        "per_class_seen_unseen": _seen_unseen(metrics),
        "per_class_recall": {
            k: v.get("recall") for k, v in (metrics.get("per_class") or {}).items()
        },
        "claim": SEED_CLAIMS.get(arch, ""),
        "command": cfg.get("command"),
        "commit": cfg.get("commit"),
    }


def _companion_columns(run: Path) -> dict[str, Any]:
    """The columns of the optional companions: the int8 model, its evaluation, FERPlus scores."""
    int8_meta = read_json_object(run / "int8.json") or {}
    int8_eval = read_json_object(run / "int8_eval" / "metrics.json") or {}
    ferplus = read_json_object(run / "ferplus7_eval" / "metrics.json") or {}
    parity = int8_meta.get("parity") or int8_meta.get("metadata", {}).get("parity") or {}
    tfl = run / "int8.tflite"
    return {
        "int8": {
            "accuracy": int8_eval.get("accuracy", parity.get("converted_accuracy")),
            "macro_f1": int8_eval.get("macro_f1", parity.get("converted_macro_f1")),
            "auc_macro": int8_eval.get("auc_macro"),
        },
        "int8_excl_twins": {
            k: (int8_eval.get("excluding_train_duplicates") or {}).get(k) for k in ("accuracy", "n")
        },
        "ferplus7": {k: ferplus.get(k) for k in ("accuracy", "macro_f1", "n")},
        "int8_drop_pp": parity.get("drop_pp"),
        "tflite_bytes": tfl.stat().st_size if tfl.is_file() else None,
    }


def _cost_columns(run: Path, cfg: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """Training time and epochs, of this cycle and with its warm-start parents."""
    lineage = _lineage(cfg)
    own_epochs = _epochs(run)
    seconds = [c["train_seconds"] for c in lineage] + [metrics.get("train_seconds")]
    # A soup (as this run or as a warm start's parent) adds no epochs of its own.
    epochs = [c["epochs"] for c in lineage if not c.get("soup")]
    if not cfg.get("soup"):
        epochs.append(own_epochs)
    return {
        "train_seconds": metrics.get("train_seconds"),
        "epochs": own_epochs,
        # Whole cost including warm-start parents; None if a parent's numbers are missing.
        "train_seconds_total": sum(seconds) if all(seconds) else None,
        "epochs_by_cycle": epochs if lineage else None,
        "lineage": lineage or None,
    }


def _lineage(cfg: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    """The earlier training cycles a warm-restarted run or a soup came from (oldest first).

    ``config.json``'s ``init_from.path`` names the parent checkpoint; its run folder (when it is
    still there) gives that cycle's train time and epochs, so a table can show the whole cost.
    A soup's parents are its kept ingredients, each with its own chain; a cycle shared by
    several chains is counted once.
    """
    if depth > 8:
        return []
    soup = cfg.get("soup") or {}
    if soup:
        cycles: dict[str, dict[str, Any]] = {}
        for ing in soup.get("ingredients") or []:
            if ing.get("kept"):
                parent = Path(ing["path"]).parent
                pcfg = read_json_object(parent / "config.json") or {}
                chain = [*_lineage(pcfg, depth + 1), _cycle(parent, pcfg)]
                for c in chain:
                    cycles.setdefault(c["run"], c)
        return list(cycles.values())
    init = cfg.get("init_from") or {}
    if not init.get("path"):
        return []
    parent = Path(init["path"]).parent
    pcfg = read_json_object(parent / "config.json") or {}
    command = (init.get("parent") or {}).get("command")
    return [*_lineage(pcfg, depth + 1), _cycle(parent, pcfg, command)]


def _cycle(run: Path, cfg: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """One step of a lineage (a training cycle or a soup): its run's train time and epochs."""
    metrics = read_json_object(run / "metrics.json") or {}
    return {
        "run": str(run),
        "found": bool(metrics),
        "soup": bool(cfg.get("soup")),
        "train_seconds": metrics.get("train_seconds"),
        "epochs": None if cfg.get("soup") else _epochs(run),
        "command": command or cfg.get("command"),
    }


def _rate_on_seen(rate: float, n: int, rate_unseen: float, n_unseen: int) -> float | None:
    """A rate on the "seen" rows, from the rate on all ``n`` rows and on the ``n_unseen`` rest."""
    n_seen = n - n_unseen
    return (rate * n - rate_unseen * n_unseen) / n_seen if n_seen else None


def _seen_unseen(metrics: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Per-class recall on the test rows also in training ("seen") and on the rest.

    Derived from the per-class recall on all rows and on the rows without a training twin.
    """
    allc = metrics.get("per_class") or {}
    unseen = (metrics.get("excluding_train_duplicates") or {}).get("per_class") or {}
    if not allc or not unseen:
        return None
    out = {}
    for name, c in allc.items():
        n, r = c.get("support") or 0, c.get("recall") or 0.0
        u = unseen.get(name) or {}
        nu, ru = u.get("support") or 0, u.get("recall") or 0.0
        out[name] = {
            "n_seen": n - nu,
            "recall_seen": _rate_on_seen(r, n, ru, nu),
            "n_unseen": nu,
            "recall_unseen": ru if nu else None,
        }
    return out


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
        secs = r.get("train_seconds_total") or r["train_seconds"]
        t = f"{secs / 60:.0f} min" if secs else "–"
        cycles = r.get("epochs_by_cycle")
        ep = "+".join(str(e) for e in cycles) if cycles else (r["epochs"] or "–")
        lines.append(
            f"| {_name(r)}{' (' + r['protocol'] + ')' if r['protocol'] != 'leak-free' else ''} "
            f"| {r['seed']} | {r['kind']} | {r['params']:,} "
            f"| {_pct(f['accuracy'])} / {_pct(q['accuracy'])} "
            f"| {_num(f['macro_f1'])} / {_num(q['macro_f1'])} "
            f"| {_num(f['auc_macro'])} / {_num(q['auc_macro'])} "
            f"| {_num(r['int8_drop_pp'], '{:.2f}')} | {_pct(r['float_excl_twins']['accuracy'])} "
            f"| {kb} | {_num(r['latency_ms'])} | {t} | {ep} | {r['claim']} |"
        )
    return head + "\n".join(lines) + "\n"


def _name(r: dict[str, Any]) -> str:
    """The architecture, and the run folder when it is not named after the architecture alone."""
    return f"`{r['arch']}`" + (f" (run `{r['run']}`)" if r["run"] != r["arch"] else "")


def leaky_table(rows: list[dict[str, Any]]) -> str:
    """Seed 002's oversample-before-split protocol beside the same architecture leak-free.

    The accuracy on test rows that were also training rows and on the rest is derived from the
    run's overall score and its score without the seen rows.
    """
    honest = _best_leak_free(rows)
    head = (
        "| architecture | protocol | epochs | test rows | test rows also in training | accuracy % on its "
        "test split | on the seen test rows | on the never-seen test rows | same architecture, "
        "leak-free PublicTest % | seed's own claim |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    )
    lines = [_leaky_line(r, honest) for r in rows if r["protocol"] != "leak-free"]
    if not lines:
        return ""
    text = head + "\n".join(lines) + "\n"
    for r in rows:
        per = r.get("per_class_seen_unseen")
        if r["protocol"] == "leak-free" or not per:
            continue
        text += _seen_unseen_table(r, per, (honest.get(r["arch"]) or {}).get("per_class_recall"))
    return text


def _best_leak_free(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The most accurate leak-free run of each architecture."""
    honest: dict[str, dict[str, Any]] = {}
    for r in rows:
        best = honest.get(r["arch"])
        if r["protocol"] == "leak-free" and (
            best is None or (r["float"]["accuracy"] or 0) > (best["float"]["accuracy"] or 0)
        ):
            honest[r["arch"]] = r
    return honest


def _leaky_line(r: dict[str, Any], honest: dict[str, dict[str, Any]]) -> str:
    """A leaky run's row: its score on seen and never-seen test rows, the leak-free one's."""
    n, acc = r["n"], r["float"]["accuracy"]
    unseen = r["float_excl_twins"]
    n_seen = r.get("n_excluded")
    seen_acc = None
    if isinstance(n, int) and isinstance(n_seen, int) and unseen["n"] is not None:
        seen_acc = _rate_on_seen(acc, n, unseen["accuracy"] or 0.0, unseen["n"])
    frac = r.get("test_fraction_seen_in_training")
    ref = honest.get(r["arch"], {}).get("float", {}).get("accuracy")
    return (
        f"| {_name(r)} | {r['protocol']} | {r['epochs'] or '–'} | {n:,} "
        f"| {n_seen if n_seen is not None else '–'} ({_pct(frac)} %) | {_pct(acc)} "
        f"| {_pct(seen_acc)} | {_pct(unseen['accuracy'])} | {_pct(ref)} | {r['claim']} |"
    )


def _seen_unseen_table(
    r: dict[str, Any], per: dict[str, dict[str, Any]], ref: dict[str, Any] | None
) -> str:
    """Per class recall of a leaky run on seen vs never-seen test rows, beside leak-free's."""
    ref = ref or {}
    text = (
        f"\nPer class, {_name(r)} ({r['protocol']}, {r['epochs']} epochs): recall on test rows "
        "that are copies of training rows vs on the rest, beside the leak-free model's "
        "PublicTest recall.\n\n"
        "| class | seen test rows | recall on seen | never-seen test rows | recall on never-seen "
        "| leak-free PublicTest recall |\n| --- | ---: | ---: | ---: | ---: | ---: |\n"
    )
    for name, c in per.items():
        text += (
            f"| {name} | {c['n_seen']:,} | {_pct(c['recall_seen'])} | {c['n_unseen']:,} "
            f"| {_pct(c['recall_unseen'])} | {_pct(ref.get(name))} |\n"
        )
    return text


def twins_table(rows: list[dict[str, Any]]) -> str:
    """PublicTest with and without the rows that have a Training twin, and vs FERPlus labels."""
    head = (
        "| model | PublicTest | PublicTest w/o rows with a Training twin | PublicTest, FERPlus "
        "majority labels (7 classes) |\n| --- | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in rows:
        if r["protocol"] != "leak-free":
            continue
        fp = r.get("ferplus7") or {}
        fp_text = (
            f"{_pct(fp['accuracy'])} % (macro-F1 {_num(fp.get('macro_f1'))}, n={fp.get('n')})"
            if fp.get("accuracy") is not None
            else "–"
        )
        excl_n = r["float_excl_twins"].get("n")
        lines.append(
            f"| `{r['run']}` float | {_pct(r['float']['accuracy'])} % (n={r['n']}) "
            f"| {_pct(r['float_excl_twins']['accuracy'])} % (n={excl_n}) | {fp_text} |"
        )
        q = r.get("int8_excl_twins") or {}
        if r["int8"]["accuracy"] is not None:
            lines.append(
                f"| `{r['run']}` int8 | {_pct(r['int8']['accuracy'])} % "
                f"| {_pct(q.get('accuracy'))} % | – |"
            )
    return head + "\n".join(lines) + "\n"


def _splice(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    pre, rest = text.split(begin, 1)
    _, post = rest.split(end, 1)
    return f"{pre}{begin}\n{body}{end}{post}"


def write_report(
    runs: list[Path], out: Path, markdown: Path | None, latency_json: Path | None
) -> list[dict[str, Any]]:
    """Collect ``runs`` into ``out`` (small files) and update the table in ``markdown``.

    Raises:
        DataError: if no run folder is complete or a JSON file is unreadable.
    """
    latency = _read_latency(latency_json)
    rows = []
    for run in runs:
        row = collect_run(run, latency)
        if row is None:
            continue
        rows.append(row)
        _copy_small_files(run, out / run.name)
    if not rows:
        raise DataError(f"no complete run folder among {[str(r) for r in runs]}")
    rows.sort(key=lambda r: -(r["float"]["accuracy"] or 0.0))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", rows)
    if markdown is not None:
        _update_markdown(markdown, rows)
    return rows


def _read_latency(latency_json: Path | None) -> dict[str, float]:
    """Face latency p50 (ms) by architecture from ``bench/latency.py``'s JSON, if given."""
    if latency_json is None:
        return {}
    lat = read_json_object(latency_json) or {}
    return {m["arch"]: m["face_ms_p50"] for m in lat.get("models", []) if "face_ms_p50" in m}


def _copy_small_files(run: Path, dest: Path) -> None:
    """Copy a run's JSON, CSV and PNG files (not ``state.json``) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(run.rglob("*")):
        if f.is_file() and f.suffix in COPY_SUFFIXES and f.name != "state.json":
            target = dest / f.relative_to(run)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)


def _update_markdown(markdown: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the tables between the results/twins/leaky markers of ``markdown``."""
    # Only leak-free runs are PublicTest results; the leaky reproduction gets its own table.
    honest = [r for r in rows if r["protocol"] == "leak-free"]
    text = markdown.read_text() if markdown.exists() else "# Results\n"
    text = _splice(text, BEGIN, END, markdown_table(honest))
    if TWINS_BEGIN in text:
        text = _splice(text, TWINS_BEGIN, TWINS_END, twins_table(honest))
    leaky = leaky_table(rows)
    if leaky:
        text = _splice(text, LEAKY_BEGIN, LEAKY_END, leaky)
    write_text_atomic(markdown, text)
