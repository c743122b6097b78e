"""``fer-edge bench`` on the bundled sample: runs, reports every stage, writes JSON (no timing
assertions: the numbers depend on the machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bench import BENCH_STAGES, REPORT_KEYS
from edge.cli import main
from edge.config import default_model_path, default_sample_path


@pytest.fixture(scope="module")
def bundled() -> Path:
    model = default_model_path()
    if not model.is_file() or not default_sample_path().is_file():
        pytest.skip("bundled model or sample video is absent")
    return model


def test_bench_writes_report_and_boxes(
    bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, boxes = tmp_path / "bench.json", tmp_path / "boxes.jsonl"
    # 45 frames of the 40-frame sample: the file is replayed, so N frames are always N frames.
    rc = main(["bench", "--frames", "45", "--json", str(out), "--boxes", str(boxes)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "per-frame CPU" in text and "fer.event" not in text  # events go to a temp JSONL
    rep = json.loads(out.read_text())
    assert set(REPORT_KEYS) <= set(rep)
    assert rep["frames"]["processed"] == 45
    for stage in (*BENCH_STAGES, "total"):
        for clock in ("wall_ms", "cpu_ms"):
            d = rep["stages"][stage][clock]
            assert set(d) == {"p50", "p95", "mean"} and d["p95"] >= d["p50"] >= 0
    assert set(rep["rss_mb"]) == {"peak", "steady"} and rep["rss_mb"]["peak"] > 0
    # OpenCV's Haar cascade finds the astronaut in every sample frame (samples/README.md), so
    # a track starts and an event is published within the run.
    assert rep["startup_s"]["first_event"] is not None
    assert rep["startup_s"]["first_frame"] <= rep["startup_s"]["first_event"]
    assert rep["faces"]["events"]["start"] >= 1
    assert rep["detector"]["full_runs"] + rep["detector"]["roi_runs"] == 45
    lines = [json.loads(x) for x in boxes.read_text().splitlines()]
    assert len(lines) == 45 and sum(bool(x["boxes"]) for x in lines) >= 40


def test_bench_rejects_live_source_and_bad_frames(
    bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--source", "0", "--frames", "3", "--json", str(out)]) == 2
    assert "file source" in capsys.readouterr().err
    assert main(["bench", "--frames", "0", "--json", str(out)]) == 2
    assert "--frames" in capsys.readouterr().err
    assert not out.exists()  # no half-written report
