"""Where a hard scene's CPU and end-to-end accuracy go, for one detector config.

Renders (or reuses) one scene of bench/hard_scenes.py, runs the pipeline in process on it and
prints:

* process CPU ms per frame per pipeline stage (capture = decode, detect, crop, infer, track,
  publish) and the detection scheduler's counters (full passes, region searches, still faces
  kept, detector model runs);
* recall, false positives and frames to first detection, as bench/hard_scenes.py reports them;
* per face appearance: the CK+48 label, the device's answer (its last event for the face), the
  classifier's answer on the original 48x48 CK+48 crop (the classifier's own ceiling), and the
  answers from every classification the tracker received for that face (most frequent, mean
  probabilities, mean of the last five): where the device is wrong and the original crop is
  right, the loss is in the pipeline (crop, tracking, when the emotion is reported).

    nice -n 5 taskset -c 1 python3 bench/scene_diag.py hard --video /tmp/hard.avi
    python3 bench/scene_diag.py hard-long --detector '{"align": "none"}' --profile
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import cv2  # noqa: E402
import hard_scenes as hs  # noqa: E402
import numpy as np  # noqa: E402

from edge import track  # noqa: E402
from edge.app import FrameRecord, Pipeline  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.publish.jsonl import JsonlSink  # noqa: E402

STAGES = ("capture", "detect", "crop", "infer", "track", "publish")


def main() -> None:
    """Run one config on one scene and print the breakdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", choices=sorted(hs.SCENES))
    ap.add_argument("--ckplus", type=Path, default=REPO.parent / "shared/data/ckplus")
    ap.add_argument("--faces", type=int, help="appearances (default: 90 hard-long, else 40)")
    ap.add_argument("--video", type=Path, help="scene video: reused if it exists, else written")
    ap.add_argument("--detector", default="{}", help="[detector] table as JSON")
    ap.add_argument("--config", default="{}", help="other config tables as JSON")
    ap.add_argument("--profile", action="store_true", help="also print cProfile's top 25")
    args = ap.parse_args()
    spec = hs.SCENES[args.scene]
    n = args.faces or (90 if args.scene == "hard-long" else 40)
    faces, labels = hs.ck_faces(args.ckplus, n)
    pls = hs.placements(spec, len(faces))
    truth = [labels[p.face_index] for p in pls]
    with tempfile.TemporaryDirectory(prefix="scene-diag-") as t:
        video = args.video or Path(t) / f"{args.scene}.avi"
        if not video.exists():
            hs.write_video(video, hs.render(faces, pls, spec["frames"], spec["camera"]), hs.FPS)
        over = {
            "source": {"type": "file", "path": str(video)},
            "detector": json.loads(args.detector),
        }
        cfg = load_config(None, {**over, **json.loads(args.config)})
        stages = np.zeros(len(STAGES))
        per_frame: list[Any] = []

        def hook(rec: FrameRecord) -> None:
            per_frame.append(rec.boxes)
            stages[:] += rec.cpu_s

        observed: list[tuple[int, list, np.ndarray]] = []
        update = track.Tracker.update

        def spy(self: track.Tracker, boxes: Any, probs: Any, frame: int, ts: float) -> Any:
            observed.append((frame, list(boxes), np.array(probs)))
            return update(self, boxes, probs, frame, ts)

        track.Tracker.update = spy  # type: ignore[method-assign]
        ev = Path(t) / "ev.jsonl"
        pipe = Pipeline(cfg, sinks=[JsonlSink(ev)], frame_hook=hook)
        prof = cProfile.Profile()
        if args.profile:
            prof.enable()
        pipe.run()
        prof.disable()
        events = [json.loads(line) for line in ev.read_text().splitlines() if line]
    nf = max(1, len(per_frame))
    ms = {s: round(float(v) / nf * 1e3, 3) for s, v in zip(STAGES, stages, strict=True)}
    print(f"{args.scene}: {nf} frames, CPU ms/frame {ms}, total {stages.sum() / nf * 1e3:.3f}")
    f = pipe.finder
    assert f is not None
    print(
        f"full passes {f.full_runs}, region frames {f.roi_runs}, still faces kept "
        f"{f.still_reuses}, detector model runs {getattr(f.detector, 'invocations', 'n/a')}"
    )
    print(json.dumps(hs.detection_scores(per_frame, pls)))
    answers = hs.device_answers(events, pls, cfg.tracking.max_missed)
    from edge.classify.deployed import open_configured

    clf = open_configured(cfg.model)
    names = list(clf.labels)
    rows = []
    for i, p in enumerate(pls):
        raw = clf.predict(cv2.resize(faces[p.face_index], (48, 48))[None])[0]
        got = np.array(
            [
                pr
                for fr, boxes, probs in observed
                if fr in p.frames
                for b, pr in zip(boxes, probs, strict=True)
                if hs.hit(b, p.box(fr))
            ]
        )
        best = [names[int(np.argmax(x))] for x in got]
        row = {
            "truth": truth[i],
            "device": answers[i],
            "original crop": names[int(np.argmax(raw))],
            "most frequent": Counter(best).most_common(1)[0][0] if best else None,
            "mean": names[int(np.argmax(got.mean(0)))] if len(got) else None,
            "last 5": names[int(np.argmax(got[-5:].mean(0)))] if len(got) else None,
        }
        rows.append(row)
        cols = " ".join(f"{k} {str(v):9}" for k, v in row.items())
        print(f"{i:3} side {p.side:3} roll {p.roll:6.1f} {cols}")
    acc = {k: round(sum(r[k] == r["truth"] for r in rows) / len(rows), 4) for k in rows[0]}
    del acc["truth"]
    print("accuracy", json.dumps(acc))
    if args.profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
