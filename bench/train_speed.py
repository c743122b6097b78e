"""Training steps per second of each ``fer-train train`` engine mode, on real FER2013 faces.

Modes (each in fresh processes, as the real command runs them):

- ``single``: one device, float32 (``fer-train train`` without options).
- ``mirrored``: ``--distribute mirrored`` over the CPU split into two logical devices (the
  stand-in for two GPUs; on a CPU both replicas share the same cores).
- ``multiworker``: ``--distribute multiworker``, two worker processes on loopback ports.
- ``bf16``: ``--precision mixed_bfloat16`` on one device.

Every mode trains the registry model with the same compile, the same augmented input pipeline
(:func:`train.fit.make_dataset`) and a global batch of ``--batch``; the first ``--warmup`` steps
(tracing, oneDNN set-up) are not timed, the next ``--steps`` are. One JSON line per (arch, mode)
goes to stdout and, with ``--out``, into a JSON file.

    nice -n 5 python3 bench/train_speed.py --csv ../shared/data/fer2013/fer2013-train-publictest.csv.gz \\
        --arch bagga_cnn1 mahastama_stacked_cnn --out docs/perf/train_speed.json \\
        --markdown docs/TRAINING.md
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

MODES = ("single", "mirrored", "multiworker", "bf16")


def _child(args: argparse.Namespace) -> int:
    """One process of one mode: train ``warmup + steps`` steps, print the timing as JSON."""
    import tensorflow as tf

    if args.mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)  # fmt: skip
    from train.distribute import make_engine
    from train.fit import make_dataset
    from train.options import TrainOptions

    distribute = {"mirrored": "mirrored", "multiworker": "multiworker"}.get(args.mode)
    precision = "mixed_bfloat16" if args.mode == "bf16" else "float32"
    opts = TrainOptions(arch=args.arch, data=args.csv, out="-", batch=args.batch, distribute=distribute, precision=precision)  # fmt: skip
    engine = make_engine(opts)  # before any other TensorFlow work
    import keras

    from edge.contract import DEFAULT_CONTRACT
    from train.data import load_fer2013
    from train.data.sampling import stratified_limit
    from train.models import create_model

    faces = stratified_limit(load_fer2013(args.csv, "Training"), args.faces, 42)
    keras.utils.set_random_seed(42)
    with engine.scope():
        model = create_model(args.arch, faces.num_classes, DEFAULT_CONTRACT.input_shape)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        engine.prepare(model)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            times.append(time.perf_counter())

    n = args.warmup + args.steps
    ds = make_dataset(faces, opts, training=True).repeat()
    model.fit(ds, steps_per_epoch=n, epochs=1, callbacks=[Clock()], verbose=0)
    span = times[-1] - times[args.warmup - 1]
    doc = {
        "arch": args.arch,
        "mode": args.mode,
        "params": int(model.count_params()),
        "replicas": engine.replicas,
        "workers": engine.workers,
        "global_batch": args.batch,
        "precision": precision,
        "timed_steps": args.steps,
        "seconds": round(span, 3),
        "steps_per_s": round(args.steps / span, 4),
        "s_per_step": round(span / args.steps, 4),
        "images_per_s": round(args.steps * args.batch / span, 2),
        "chief": engine.is_chief,
    }
    print("RESULT " + json.dumps(doc), flush=True)
    return 0


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run_mode(args: argparse.Namespace, arch: str, mode: str) -> dict[str, Any]:
    base = [sys.executable, __file__, "--child", "--mode", mode, "--arch", arch, "--csv", args.csv]
    base += ["--batch", str(args.batch), "--warmup", str(args.warmup), "--steps", str(args.steps)]
    base += ["--faces", str(args.faces)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if mode != "multiworker":
        procs = [subprocess.Popen(base, env=env, stdout=subprocess.PIPE, text=True)]
    else:
        cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
        procs = [
            subprocess.Popen(
                base,
                env=dict(
                    env,
                    TF_CONFIG=json.dumps(
                        {"cluster": cluster, "task": {"type": "worker", "index": i}}
                    ),
                ),
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for i in range(2)
        ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"{arch} {mode}: a process failed ({[p.returncode for p in procs]})")
    docs = [json.loads(line[7:]) for o in outs for line in o.splitlines() if line.startswith("RESULT ")]  # fmt: skip
    return next(d for d in docs if d["chief"])


def markdown_table(doc: dict[str, Any]) -> str:
    """The steps/s table of a results document (one row per arch, one column per mode)."""
    rows = doc["rows"]
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    label = {
        "single": "one device, float32",
        "mirrored": "mirrored, 2 logical CPUs",
        "multiworker": "multiworker, 2 processes",
        "bf16": "one device, mixed_bfloat16",
    }
    head = "| architecture | params | " + " | ".join(label[m] for m in modes) + " |"
    lines = [head, "| --- | ---: | " + " | ".join("---:" for _ in modes) + " |"]
    for arch in dict.fromkeys(r["arch"] for r in rows):
        by = {r["mode"]: r for r in rows if r["arch"] == arch}
        cells = [
            f"{by[m]['steps_per_s']:.3g} ({by[m]['s_per_step']:.3g} s)" if m in by else "-"
            for m in modes
        ]
        lines.append(f"| `{arch}` | {next(iter(by.values()))['params']:,} | " + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _update_markdown(path: Path, table: str) -> None:
    begin, end = "<!-- train_speed:begin -->", "<!-- train_speed:end -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + "\n" + table + end + rest.split(end, 1)[1])


def main(argv: list[str] | None = None) -> int:
    """Measure every (arch, mode); print JSON lines; write ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True, help="FER2013 CSV (plain or .gz)")
    ap.add_argument("--arch", nargs="+", default=["bagga_cnn1", "mahastama_stacked_cnn"])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--batch", type=int, default=64, help="global batch")
    ap.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--faces", type=int, default=2000, help="Training faces in the pipeline")
    ap.add_argument("--out", type=Path, help="JSON file for the results")
    ap.add_argument("--markdown", type=Path, help="Markdown file whose train_speed table to update")
    ap.add_argument("--replot", action="store_true", help="only redo --markdown from --out")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.arch = args.arch[0]
        return _child(args)
    if args.replot:
        if not (args.out and args.markdown):
            raise SystemExit("--replot needs --out (the results) and --markdown")
        _update_markdown(args.markdown, markdown_table(json.loads(args.out.read_text())))
        return 0
    rows, load0 = [], os.getloadavg()
    for arch in args.arch:
        for mode in args.modes:
            row = _run_mode(args, arch, mode)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        doc = {
            "command": "python3 bench/train_speed.py " + " ".join(sys.argv[1:]),
            "cpus": os.cpu_count(),
            # Other jobs share the machine: its 1-minute load average before and after.
            "loadavg_1min": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
            "rows": rows,
        }
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        if args.markdown:
            _update_markdown(args.markdown, markdown_table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
