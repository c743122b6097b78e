"""Side by side: the ``fer`` PyPI package vs fer-edge on the same frames, pinned to one core.

Both run as separate processes pinned with ``taskset -c CORE`` on the same 640x480 video (one
face per frame, ground truth known; see benchvideo.py), each in its own environment:

* ``fer`` (Haar + mini-XCEPTION, TensorFlow) in its own venv, through fer_runner.py;
* fer-edge through ``python -m edge bench`` (the ``fer-edge bench`` command).

Reported per side: CPU ms per frame with and without video decoding (process CPU time /
frames), detection recall and false positives against the ground truth, resident memory (peak
and steady), start-up from process start to the first result/event, and the speed ratio.
See bench/README.md for how to set up both venvs and rerun.

    python3 bench/compare_fer.py --video /tmp/bench/astro640.avi --frames 300 \\
        --fer-python /tmp/fer-venv/bin/python --json docs/perf/compare_fer.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from benchvideo import load_truth, score  # noqa: E402


def pinned(core: int, argv: list[str]) -> list[str]:
    """``argv`` run under ``taskset -c core`` (unpinned, with a warning, without taskset)."""
    if shutil.which("taskset") is None:
        print("warning: taskset not found; running unpinned", file=sys.stderr)
        return argv
    return ["taskset", "-c", str(core), *argv]


def run_fer(python: str, video: Path, frames: int, core: int, tmp: Path) -> dict[str, Any]:
    """Run fer_runner.py in fer's venv; return its report with recall added."""
    out = tmp / "fer.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    cmd = pinned(core, [python, str(HERE / "fer_runner.py"), str(video), str(frames), str(out)])
    subprocess.run(cmd, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
    rep = json.loads(out.read_text())
    truths = load_truth(video)
    per_frame = rep.pop("boxes")
    rep.pop("emotions", None)
    rep["detection"] = score(per_frame, [truths[i % len(truths)] for i in range(len(per_frame))])
    return rep


def run_edge(
    python: str, video: Path, frames: int, core: int, tmp: Path, config: Path | None
) -> dict[str, Any]:
    """Run ``python -m edge bench`` pinned; return its report with recall added."""
    out, boxes = tmp / "edge.json", tmp / "edge.boxes.jsonl"
    argv = [python, "-m", "edge", "bench", "--source", str(video), "--frames", str(frames)]
    argv += ["--json", str(out), "--boxes", str(boxes)]
    if config is not None:
        argv += ["--config", str(config)]
    subprocess.run(pinned(core, argv), check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    rep = json.loads(out.read_text())
    truths = load_truth(video)
    per_frame = [json.loads(line)["boxes"] for line in boxes.read_text().splitlines() if line]
    rep["detection"] = score(per_frame, [truths[i % len(truths)] for i in range(len(per_frame))])
    return rep


def main() -> None:
    """Run both sides and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=Path("/tmp/bench/astro640.avi"))
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--core", type=int, default=0, help="CPU core both sides are pinned to")
    ap.add_argument("--fer-python", default="/tmp/fer-venv/bin/python")
    ap.add_argument("--edge-python", default=sys.executable, help="python with fer-edge")
    ap.add_argument("--edge-config", type=Path, help="TOML config for fer-edge (detector etc.)")
    ap.add_argument("--json", type=Path, help="write the comparison here")
    ap.add_argument("--skip-fer", type=Path, help="reuse a previous --json's fer side")
    args = ap.parse_args()
    if not args.video.with_suffix(".truth.json").is_file():
        raise SystemExit(f"{args.video} has no ground truth; make it with bench/benchvideo.py")
    with tempfile.TemporaryDirectory(prefix="compare-fer-") as t:
        tmp = Path(t)
        if args.skip_fer:
            fer = json.loads(args.skip_fer.read_text())["fer"]
        else:
            fer = run_fer(args.fer_python, args.video, args.frames, args.core, tmp)
        edge = run_edge(
            args.edge_python,
            args.video,
            args.frames,
            args.core,
            tmp,
            args.edge_config.resolve() if args.edge_config else None,
        )
    e_cpu = edge["per_frame_cpu_ms"]
    f_cpu = fer["per_frame_cpu_ms"]
    result = {
        "video": str(args.video),
        "frames": args.frames,
        "core": args.core,
        "fer": fer,
        "edge": {k: edge[k] for k in ("per_frame_cpu_ms", "fps", "rss_mb", "startup_s")}
        | {"detection": edge["detection"], "detector": edge["detector"], "stages": edge["stages"]},
        "ratio": {
            "cpu_with_decode": round(f_cpu["with_decode"] / e_cpu["loop"], 2),
            "cpu_without_decode": round(f_cpu["without_decode"] / e_cpu["loop_without_capture"], 2),
        },
    }
    rows = [
        ("CPU ms/frame (decode incl.)", f_cpu["with_decode"], e_cpu["loop"]),
        ("CPU ms/frame (decode excl.)", f_cpu["without_decode"], e_cpu["loop_without_capture"]),
        ("detection recall", fer["detection"]["recall"], edge["detection"]["recall"]),
        (
            "false positives",
            fer["detection"]["false_positives"],
            edge["detection"]["false_positives"],
        ),
        ("RSS peak MiB", fer["rss_mb"]["peak"], edge["rss_mb"]["peak"]),
        ("RSS steady MiB", fer["rss_mb"]["steady"], edge["rss_mb"]["steady"]),
        (
            "start-up to 1st result s",
            fer["startup_s"]["first_result"],
            edge["startup_s"]["first_event"],
        ),
        ("frames/s (1 core)", fer["fps"], edge["fps"]),
    ]
    print(f"{'':30} {'fer':>10} {'fer-edge':>10}")
    for name, a, b in rows:
        print(f"{name:30} {a!s:>10} {b!s:>10}")
    r = result["ratio"]
    print(
        f"fer-edge is {r['cpu_with_decode']}x faster per frame (decode included), "
        f"{r['cpu_without_decode']}x without decode"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = args.json.with_suffix(".tmp")
        tmp_out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_out, args.json)


if __name__ == "__main__":
    main()
