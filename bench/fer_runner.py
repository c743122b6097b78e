"""Run the ``fer`` PyPI package (Haar + mini-XCEPTION) over a video; run by compare_fer.py.

This file runs inside fer's OWN virtual environment (TensorFlow, no fer-edge), so it imports
nothing from this repository. It measures the same things ``fer-edge bench`` measures: process
CPU per frame (decode included and excluded), resident memory, start-up from process start to
the first result, and the face boxes of every frame (for detection recall) with fer's top
emotion for each box (for end-to-end accuracy, bench/hard_scenes.py).

    /tmp/fer-venv/bin/python bench/fer_runner.py VIDEO N OUT.json
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _start() -> float:
    with open("/proc/self/stat", encoding="ascii") as fh:
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    """Decode ``N`` frames of ``VIDEO`` (rewinding at the end) and run FER on each."""
    video, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    origin = _start()
    import cv2
    from fer.fer import FER  # fer 25.x; older releases export it as ``from fer import FER``

    detector = FER()  # defaults: Haar frontal-face cascade, quantized TFLite mini-XCEPTION
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    boxes: list[list[list[int]]] = []
    emotions: list[list[str]] = []
    decode_cpu = 0.0
    rss: list[float] = []
    first_result = None
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for i in range(n):
        c = time.process_time()
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = cap.read()
        decode_cpu += time.process_time() - c
        result = detector.detect_emotions(frame)
        if first_result is None:
            first_result = _boottime() - origin
        boxes.append([[int(v) for v in r["box"]] for r in result])
        emotions.append([max(r["emotions"], key=r["emotions"].get) for r in result])
        if (i + 1) % 10 == 0:
            rss.append(_rss_mb())
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    rss_tail = sorted(rss[len(rss) // 2 :] or rss)
    report = {
        "frames": n,
        "per_frame_cpu_ms": {
            "with_decode": round(cpu / n * 1e3, 3),
            "without_decode": round((cpu - decode_cpu) / n * 1e3, 3),
        },
        "fps": round(n / wall, 2),
        "rss_mb": {
            "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "steady": round(rss_tail[len(rss_tail) // 2], 1) if rss_tail else None,
        },
        "startup_s": {"first_result": round(first_result or 0.0, 3)},
        "boxes": boxes,
        "emotions": emotions,
    }
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main()
