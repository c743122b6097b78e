"""bench/ablation.py: runs compared at equal epochs, not a short run against a long run's end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ablation():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ablation", REPO / "bench" / "ablation.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(root: Path, name: str, vals: list[float]) -> Path:
    run = root / name
    run.mkdir()
    rows = "".join(f"{i},0.5,1.0,{v},1.0\n" for i, v in enumerate(vals))
    (run / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n" + rows)
    return run


def test_compares_at_shared_epochs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    long = _run(tmp_path, "long", [0.30, 0.40, 0.50, 0.60, 0.70])
    short = _run(tmp_path, "short", [0.35, 0.45])
    out, png = tmp_path / "a.json", tmp_path / "a.png"
    rc = _ablation().main(["--runs", str(long), str(short), "--at", "2", "5", "--out", str(out), "--plot", str(png)])  # fmt: skip
    assert rc == 0 and png.stat().st_size > 0
    got = json.loads(out.read_text())
    assert got["shared_epochs"] == 2
    a, b = got["runs"]
    assert a["at"] == {"2": 40.0, "5": 70.0} and b["at"] == {"2": 45.0}
    assert (a["best_within_shared"], a["best"], b["best_within_shared"]) == (40.0, 70.0, 45.0)


def test_label_count_must_match(tmp_path: Path) -> None:
    run = _run(tmp_path, "r", [0.3])
    with pytest.raises(SystemExit) as e:
        _ablation().main(["--runs", str(run), "--labels", "a", "b", "--out", "x", "--plot", "y"])
    assert e.value.code == 2
