"""``fer-train soup``: weight averaging of real (tiny) training runs on real FER2013 faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]

from train.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory: pytest.TempPathFactory, fer_slice_csv: Path) -> list[Path]:
    """A 1-epoch run and a 1-epoch warm restart from it (one lineage, two checkpoints)."""
    root = tmp_path_factory.mktemp("cycles")
    first, second = root / "first", root / "second"
    common = ["train", "--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--limit", "300", "--epochs", "1", "--lr", "1e-4"]  # fmt: skip
    assert main([*common, "--out", str(first)]) == 0
    assert main([*common, "--init-from", str(first / "model.keras"), "--seed", "7", "--out", str(second)]) == 0  # fmt: skip
    return [first / "model.keras", second / "model.keras"]


def test_uniform_soup_is_the_mean_and_keeps_provenance(
    tmp_path: Path, fer_slice_csv: Path, two_cycles: list[Path]
) -> None:
    import keras

    from train.report import collect_run

    out = tmp_path / "soup"
    args = ["soup", *map(str, two_cycles), "--data", str(fer_slice_csv), "--method", "uniform"]
    assert main([*args, "--out", str(out)]) == 0
    a, b = (keras.models.load_model(p, compile=False).get_weights() for p in two_cycles)
    got = keras.models.load_model(out / "model.keras", compile=False).get_weights()
    for wa, wb, w in zip(a, b, got, strict=True):
        assert np.allclose(w, (wa + wb) / 2, atol=1e-6)
    assert not any(wa.shape == () or np.array_equal(wa, wb) for wa, wb in zip(a, b, strict=True))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "complete" and cfg["arch"] == "bagga_cnn1"
    ings = cfg["soup"]["ingredients"]
    assert [i["path"] for i in ings] == [str(p) for p in two_cycles]
    assert all(i["kept"] and len(i["sha256"]) == 64 for i in ings)
    assert ings[1]["parent"]["init_from"]["path"] == str(two_cycles[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 300 and "excluding_train_duplicates" in metrics
    # The report counts the shared first cycle once: 1 + 1 epochs, not 1 + (1 + 1).
    row = collect_run(out, {})
    assert row is not None and row["epochs_by_cycle"] == [1, 1]


def test_greedy_soup_starts_from_the_best(
    tmp_path: Path, fer_slice_csv: Path, two_cycles: list[Path]
) -> None:
    out = tmp_path / "greedy"
    assert main(["soup", *map(str, two_cycles), "--data", str(fer_slice_csv), "--out", str(out)]) == 0  # fmt: skip
    ings = json.loads((out / "config.json").read_text())["soup"]["ingredients"]
    best = max(ings, key=lambda i: i["val_accuracy"])
    assert best["kept"]
    metrics = json.loads((out / "metrics.json").read_text())
    # Greedy never ends below its best ingredient on the selection split. config.json rounds
    # val_accuracy to 6 decimals, so it may sit up to 5e-7 above the exact accuracy.
    assert metrics["accuracy"] >= best["val_accuracy"] - 5e-7


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("one", "at least two checkpoints"),
        ("missing", "no such file"),
        ("other_arch", "differ in 'arch'"),
        ("leaky", "only leak-free runs"),
    ],
)
def test_bad_soup_exit_2_nothing_left(
    tmp_path: Path,
    fer_slice_csv: Path,
    two_cycles: list[Path],
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    models = [str(two_cycles[0])]
    if case == "missing":
        models.append(str(tmp_path / "nope" / "model.keras"))
    elif case in ("other_arch", "leaky"):
        other = tmp_path / "other"
        extra = ["--protocol", "seed002-leaky"] if case == "leaky" else []
        arch = "bagga_cnn1" if case == "leaky" else "bagga_cnn_lstm2"
        assert main(["train", "--arch", arch, "--data", str(fer_slice_csv), "--limit", "200", "--epochs", "1", *extra, "--out", str(other)]) == 0  # fmt: skip
        models.append(str(other / "model.keras"))
    capsys.readouterr()
    out = tmp_path / "bad"
    assert main(["soup", *models, "--data", str(fer_slice_csv), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
