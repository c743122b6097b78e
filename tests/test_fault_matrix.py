"""The fault matrix (bench/fault_matrix.py) with short timings: every row, real processes.

Each row runs the real ``fer-edge run`` device, mosquitto, ``fer-edge dashboard`` and
``fer-edge monitor`` on loopback (see the bench module). Timings are scaled down (expiry 4 s,
keepalive 6 s, faults of 10 s) so a row takes 15-40 s; the targets are the issue's, scaled:
subscribers show a dead or silent device as not online within the expiry (+ 1.5 s of sampling
and display ticks), a half-open link is detected within 1.5 x keepalive, no event is lost in
any row, and a device that comes back is shown online again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from fault_matrix import ROWS, Params, check_row, run_row  # noqa: E402

from edge.config import default_sample_path  # noqa: E402

SHORT = Params(
    expiry_s=4,
    keepalive_s=6,
    fault_s=10.0,
    before_s=2.0,
    after_s=3.0,
    reconnect_min_s=0.2,
    reconnect_max_s=1.0,
    settle_s=25.0,
)


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS)
def test_fault_matrix_row(row: str, model_path: Path, tmp_path: Path) -> None:
    r: dict[str, Any] = run_row(row, SHORT, tmp_path / row, default_sample_path(), model_path)
    assert check_row(r, SHORT) == [], r
    assert r["produced"] >= 10 and r["unexpected"] == 0
    if "truth_s" in r:
        assert r["truth_s"] is not None and r["truth_s"] <= SHORT.expiry_s + 1.5, r
        assert r["ha_unavailable_s"] is not None and r["ha_unavailable_s"] <= SHORT.expiry_s + 0.5
    assert r["lost"] == 0, r  # kill_in_outage too: the restarted device re-sends its spool
    if row != "sigkill":
        assert r["recovered_s"] is not None and r["reconnect_s"] is not None, r
    if row == "half_open":
        assert r["detect_s"] is not None and r["detect_s"] <= 1.5 * SHORT.keepalive_s
    if row == "kill_in_outage":
        assert r["retained_status_after_restart"] == []  # the retained 'online' expired
    if row == "camera_loss_in_outage":
        assert r["camera_open_failures"] > 0, r  # the camera really was away meanwhile
