"""``fer-train report``: run folders -> docs/results copies + the RESULTS.md table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.errors import DataError
from train.cli import main
from train.report import BEGIN, END


def _run(root: Path, name: str, arch: str, acc: float, status: str = "complete") -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"arch": arch, "status": status, "seed_paper": "002_x.txt", "kind": "cnn", "labels": ["a", "b"], "options": {"protocol": "leak-free"}, "command": "fer-train train ...", "commit": "abc"}))  # fmt: skip
    (run / "metrics.json").write_text(json.dumps({"accuracy": acc, "macro_f1": 0.5, "auc_macro": 0.8, "n": 10, "model": {"params": 1234}, "train_seconds": 600, "excluding_train_duplicates": {"accuracy": acc - 0.01, "macro_f1": 0.4, "n": 9}}))  # fmt: skip
    (run / "history.csv").write_text("epoch,accuracy\n0,0.1\n1,0.2\n")
    (run / "model.keras").write_bytes(b"weights are never copied")
    (run / "int8.json").write_text(json.dumps({"parity": {"converted_accuracy": acc - 0.002, "drop_pp": 0.2}}))  # fmt: skip
    return run


def test_report_collects_and_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _run(runs, "a", "bagga_cnn1", 0.61)
    _run(runs, "b", "feredge_sepnet", 0.65)
    _run(runs, "c", "savitri_cnn", 0.7, status="running")  # unfinished: skipped
    md = tmp_path / "RESULTS.md"
    md.write_text(f"# Results\n\nintro\n\n{BEGIN}\nold\n{END}\n\nconclusion\n")
    out = tmp_path / "docs" / "results"
    assert main(["report", "--runs", str(runs), "--out", str(out), "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "intro" in text and "conclusion" in text and "old" not in text
    table = text.split(BEGIN)[1].split(END)[0]
    assert table.index("feredge_sepnet") < table.index("bagga_cnn1")  # best first
    assert "65.00 / 64.80" in table and "74.65 (seed 002" in table and "savitri" not in table
    assert (out / "a" / "metrics.json").is_file() and (out / "a" / "history.csv").is_file()
    assert not (out / "a" / "model.keras").exists()
    rows = json.loads((out / "results.json").read_text())
    assert [r["arch"] for r in rows] == ["feredge_sepnet", "bagga_cnn1"]
    assert rows[0]["epochs"] == 2 and rows[0]["int8_drop_pp"] == 0.2


def test_report_without_complete_runs(tmp_path: Path) -> None:
    from train.report import write_report

    with pytest.raises(DataError, match="no complete run folder"):
        write_report([tmp_path], tmp_path / "out", None, None)


def test_report_leaky_table_and_warm_restart_lineage(tmp_path: Path) -> None:
    """The leaky reproduction is kept out of the PublicTest table; warm restarts add up."""
    from train.report import LEAKY_BEGIN, LEAKY_END, TWINS_BEGIN, TWINS_END

    runs = tmp_path / "runs"
    first = _run(runs, "lstm3", "bagga_cnn_lstm3", 0.62)
    leaky = _run(runs, "lstm3-leaky", "bagga_cnn_lstm3", 0.80)
    cfg = json.loads((leaky / "config.json").read_text())
    cfg["options"]["protocol"] = "seed002-leaky"
    cfg["data"] = {"test_fraction_seen_in_training": 0.6}
    (leaky / "config.json").write_text(json.dumps(cfg))
    # 100 test rows, 60 also in training; 52% right on the 40 never seen -> 98.67% on the 60 seen.
    # Class "a": 60 rows all seen (recall 0.95); class "b": 40 rows never seen (recall 0.5).
    per_all = {"a": {"support": 60, "recall": 0.95}, "b": {"support": 40, "recall": 0.5}}
    per_unseen = {"a": {"support": 0, "recall": None}, "b": {"support": 40, "recall": 0.5}}
    (leaky / "metrics.json").write_text(json.dumps({"accuracy": 0.8, "n": 100, "per_class": per_all, "excluding_train_duplicates": {"accuracy": 0.52, "n": 40, "n_excluded": 60, "per_class": per_unseen}}))  # fmt: skip
    second = _run(runs, "lstm3-r2", "bagga_cnn_lstm3", 0.64)
    cfg = json.loads((second / "config.json").read_text())
    cfg["init_from"] = {"path": str(first / "model.keras"), "parent": {"command": "first cmd"}}
    (second / "config.json").write_text(json.dumps(cfg))
    md = tmp_path / "RESULTS.md"
    md.write_text(
        f"# R\n\n{BEGIN}\n{END}\n\n{LEAKY_BEGIN}\n{LEAKY_END}\n\n{TWINS_BEGIN}\n{TWINS_END}\n"
    )
    out = tmp_path / "out"
    assert main(["report", "--runs", str(first), str(leaky), str(second), "--out", str(out), "--markdown", str(md)]) == 0  # fmt: skip
    text = md.read_text()
    table = text.split(BEGIN)[1].split(END)[0]
    assert "seed002-leaky" not in table and table.count("bagga_cnn_lstm3") == 2
    assert "| 20 min | 2+2 |" in table  # 600 s + 600 s, two epochs per cycle
    leaky_rows = text.split(LEAKY_BEGIN)[1].split(LEAKY_END)[0]
    assert "| 100 | 60 (60.00 %) | 80.00 | 98.67 | 52.00 | 64.00 |" in leaky_rows
    twins = text.split(TWINS_BEGIN)[1].split(TWINS_END)[0]
    assert "| `lstm3` float | 62.00 % (n=10) | 61.00 % (n=9) | – |" in twins
    assert "| `lstm3` int8 | 61.80 % |" in twins and "leaky" not in twins
    assert "| a | 60 | 95.00 | 0 | – |" in leaky_rows and "| b | 0 | – | 40 | 50.00 |" in leaky_rows
    rows = {r["run"]: r for r in json.loads((out / "results.json").read_text())}
    assert rows["lstm3-r2"]["lineage"][0]["command"] == "first cmd"
    assert rows["lstm3-r2"]["train_seconds_total"] == 1200


def test_warm_restart_from_a_soup_counts_the_soups_cycles_once(tmp_path: Path) -> None:
    """A cycle started from a soup: the soup's ingredients' cycles add up, the soup adds no
    epochs (only the seconds it took to average), so the epochs read ``2+2``, not ``2+None+2``."""
    runs = tmp_path / "runs"
    first = _run(runs, "c1", "feredge_sepnet", 0.60)
    soup = runs / "soup"
    soup.mkdir()
    (soup / "config.json").write_text(json.dumps({"arch": "feredge_sepnet", "status": "complete", "labels": ["a", "b"], "command": "fer-train soup ...", "soup": {"ingredients": [{"path": str(first / "model.keras"), "kept": True}]}}))  # fmt: skip
    (soup / "metrics.json").write_text(json.dumps({"accuracy": 0.61, "n": 10, "train_seconds": 60}))
    child = _run(runs, "c2", "feredge_sepnet", 0.63)
    cfg = json.loads((child / "config.json").read_text())
    cfg["init_from"] = {"path": str(soup / "model.keras"), "parent": {"command": "fer-train soup ..."}}  # fmt: skip
    (child / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    assert main(["report", "--runs", str(child), "--out", str(out)]) == 0
    row = json.loads((out / "results.json").read_text())[0]
    assert row["epochs_by_cycle"] == [2, 2]
    assert [c["soup"] for c in row["lineage"]] == [False, True]
    assert row["train_seconds_total"] == 1260
