"""The typed run folder (train/runfolder.py): one rule for missing and corrupt files, everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import DataError
from train.cli import main
from train.metrics import HEADLINE
from train.runfolder import PROVENANCE_KEYS, RunFileError, RunFolder, read_json_object

CORRUPT = {
    "truncated": '{"arch": "bagga_cnn1", "sta',
    "not an object": '["bagga_cnn1"]',
    "not UTF-8": b"\xff\xfe{}",
}


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def test_missing_files_are_none(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "nowhere")
    assert run.read_config() is None
    assert run.read_state() is None
    assert run.read_metrics() is None
    assert run.provenance() is None
    assert read_json_object(tmp_path / "none.json") is None


@pytest.mark.parametrize("name", ["config.json", "state.json", "metrics.json"])
@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_files_raise_naming_the_file(tmp_path: Path, name: str, kind: str) -> None:
    run = RunFolder(tmp_path / "run")
    _write(run.path / name, CORRUPT[kind])
    read = {"config.json": run.read_config, "state.json": run.read_state}.get(
        name, run.read_metrics
    )
    with pytest.raises(RunFileError, match=rf"{run.path / name}: ") as ei:
        read()
    assert isinstance(ei.value, DataError)  # CLIs exit 2 on it
    reason = "expected a JSON object" if kind == "not an object" else "unreadable JSON"
    assert reason in str(ei.value)


def test_round_trip_and_provenance(tmp_path: Path) -> None:
    run = RunFolder.of_checkpoint(tmp_path / "run" / "model.keras")
    assert run.path == tmp_path / "run"
    cfg = {k: f"<{k}>" for k in PROVENANCE_KEYS} | {"status": "complete", "labels": ["a"]}
    run.write_config(cfg)
    run.write_state({"epoch": 3, "train_seconds": float("nan")})  # NaN becomes null
    run.write_metrics({"accuracy": 0.5})
    assert run.read_config() == cfg
    assert run.read_state() == {"epoch": 3, "train_seconds": None}
    assert run.read_metrics() == {"accuracy": 0.5}
    assert run.provenance() == {k: f"<{k}>" for k in PROVENANCE_KEYS}
    assert sorted(p.name for p in run.path.iterdir()) == [
        "config.json",
        "metrics.json",
        "state.json",
    ]


def test_checkpoint_provenance_reads_the_run_folder(tmp_path: Path) -> None:
    from train.provenance import checkpoint_provenance, leak_free_run_config

    ckpt = tmp_path / "run" / "model.keras"
    _write(ckpt, b"weights")
    info = checkpoint_provenance(ckpt)
    assert "parent" not in info and len(info["sha256"]) == 64
    RunFolder.of_checkpoint(ckpt).write_config({"arch": "x", "commit": "abc", "extra": 1})
    parent = checkpoint_provenance(ckpt)["parent"]
    assert parent == {"arch": "x", "command": None, "resumed_with": None, "commit": "abc", "init_from": None}  # fmt: skip
    _write(ckpt.parent / "config.json", CORRUPT["truncated"])
    with pytest.raises(RunFileError, match="config.json: unreadable JSON"):
        leak_free_run_config(ckpt, "soup ingredient")


def test_report_cli_names_a_corrupt_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "a"
    _write(run / "config.json", CORRUPT["not an object"])
    rc = main(["report", "--runs", str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{run / 'config.json'}: expected a JSON object" in err
    assert not (tmp_path / "out").exists()


def test_compare_row_names_a_corrupt_state(tmp_path: Path) -> None:
    from train.compare import _row

    run = tmp_path / "run"
    RunFolder(run).write_config({"options": {"seed": 1}})
    _write(run / "state.json", CORRUPT["truncated"])
    metrics = {"n": 1, **dict.fromkeys(HEADLINE, 0.5)}
    with pytest.raises(RunFileError, match="state.json: unreadable JSON"):
        _row("bagga_cnn1", run, False, metrics, {"params": 1})
