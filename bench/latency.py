"""Single-face int8 latency of every registered architecture, and a latency-vs-accuracy plot.

For each architecture in the registry (``fer-train models``) this builds the model with freshly
initialized weights (latency does not depend on the weight values), converts it to full-integer
int8 TFLite exactly as ``fer-convert`` does (tf_keras rebuild with batch 1, representative set,
``TFLITE_BUILTINS_INT8``), and times it with ai-edge-litert on one thread: ``warmup`` invokes,
then ``invokes`` timed ones. Reported per model: median and p95 wall time of one face as the
device runs it (quantize via lookup table, set input, reset LSTM state, invoke, read output),
the median of ``invoke()`` alone, CPU time per face, model size and parameters. For CNN models
(no fused LSTM state) it also times a batch of 4 faces in one invoke via
``resize_tensor_input``, to decide whether batching is worth it.

Accuracy comes from ``runs/<name>*/metrics.json`` (best leak-free run; ``accuracy``) when a
trained run exists; architectures without one are plotted at the bottom edge and marked "no
trained run".

    taskset -c 1 python3 bench/latency.py --out docs/perf/latency.json \\
        --plot docs/img/latency_vs_accuracy.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def representative_faces(n: int, seed: int = 0) -> np.ndarray:
    """uint8 faces for int8 calibration: real FER2013 faces when the data is there, else noise.

    Calibration only sets quantization ranges; latency is the same either way.
    """
    csv = REPO.parent / "shared" / "data" / "fer2013" / "fer2013-train-publictest.csv.gz"
    if csv.is_file():
        from edge.testing.facevideo import load_fer_faces

        return np.stack(load_fer_faces(csv, n))
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def convert_int8(arch: str, faces: np.ndarray) -> bytes:
    """Fresh ``arch`` -> batch-1 tf_keras model -> int8 TFLite bytes (the fer-convert path)."""
    import tf_keras

    from convert.quantize import convert
    from edge.contract import DEFAULT_CONTRACT
    from train.models import create_model

    twin = create_model(arch, 7, DEFAULT_CONTRACT.input_shape, backend="tf_keras")
    s = DEFAULT_CONTRACT.size
    inp = tf_keras.Input(shape=(s, s, 1), batch_size=1, name="image")
    model = tf_keras.Model(inp, twin(inp, training=False), name=arch)
    data, _ = convert(model, "int8", faces)
    return data, int(twin.count_params())


def time_model(data: bytes, faces: np.ndarray, invokes: int, warmup: int) -> dict[str, Any]:
    """Time one-face inference of an int8 model on one thread (see module docstring)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    lut = np.clip(np.round(np.arange(256) / scale + zp), -128, 127).astype(np.int8)
    buf = np.zeros((1, 48, 48, 1), np.int8)
    full, inv = [], []
    pc = time.perf_counter
    n = len(faces)
    for i in range(warmup):
        np.take(lut, faces[i % n], out=buf[0, :, :, 0])
        interp.set_tensor(inp["index"], buf)
        interp.reset_all_variables()
        interp.invoke()
    cpu0 = time.process_time()
    for i in range(invokes):
        t0 = pc()
        np.take(lut, faces[i % n], out=buf[0, :, :, 0])
        interp.set_tensor(inp["index"], buf)
        interp.reset_all_variables()
        t1 = pc()
        interp.invoke()
        t2 = pc()
        interp.get_tensor(out["index"])
        t3 = pc()
        full.append(t3 - t0)
        inv.append(t2 - t1)
    cpu = (time.process_time() - cpu0) / invokes
    f = np.asarray(full) * 1e3
    return {
        "face_ms_p50": round(float(np.median(f)), 4),
        "face_ms_p95": round(float(np.percentile(f, 95)), 4),
        "invoke_ms_p50": round(float(np.median(np.asarray(inv) * 1e3)), 4),
        "cpu_ms_per_face": round(cpu * 1e3, 4),
    }


def time_batch(data: bytes, faces: np.ndarray, batch: int, invokes: int) -> dict[str, Any] | None:
    """Per-face time of ``batch`` faces in one invoke (CNN models only), or ``None`` when the
    runtime refuses the resize."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    idx = interp.get_input_details()[0]["index"]
    try:
        interp.resize_tensor_input(idx, [batch, 48, 48, 1], strict=False)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        return {"error": str(e)[:200]}
    x = np.ascontiguousarray(faces[:batch, :, :, None].astype(np.int16) - 128).astype(np.int8)
    for _ in range(20):
        interp.set_tensor(idx, x)
        interp.invoke()
    t = []
    for _ in range(invokes):
        t0 = time.perf_counter()
        interp.set_tensor(idx, x)
        interp.invoke()
        t.append(time.perf_counter() - t0)
    return {"batch": batch, "face_ms_p50": round(float(np.median(t)) * 1e3 / batch, 4)}


def accuracy_of(arch: str, runs: Path) -> tuple[float | None, str | None]:
    """Best PublicTest accuracy of a finished leak-free run of ``arch`` (``runs/<arch>*/``).

    Runs of other protocols (the seed-002 leaky reproduction scores its own leaky split) and
    runs of other architectures whose names share the prefix are skipped.
    """
    best: tuple[float, str] | None = None
    for m in runs.glob(f"{arch}*/metrics.json"):
        try:
            d = json.loads(m.read_text())
            cfg = json.loads((m.parent / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        protocol = (cfg.get("options") or {}).get("protocol", "leak-free")
        if cfg.get("arch") != arch or protocol != "leak-free":
            continue
        acc = d.get("test_accuracy", d.get("accuracy"))
        if isinstance(d.get("test"), dict):
            acc = d["test"].get("accuracy", acc)
        if isinstance(acc, int | float) and (best is None or acc > best[0]):
            best = (float(acc), str(m.resolve().relative_to(REPO)))
    return best if best else (None, None)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Latency (x) vs accuracy (y); models without accuracy sit on the bottom edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    have = [r for r in results if r["accuracy"] is not None]
    floor = min([r["accuracy"] for r in have], default=0.5) - 0.05
    for i, r in enumerate(sorted(results, key=lambda r: r["face_ms_p50"])):
        lstm = r["kind"] == "cnn_lstm"
        y = r["accuracy"] if r["accuracy"] is not None else floor
        colour = "tab:orange" if lstm else "tab:blue"
        ax.scatter(
            r["face_ms_p50"],
            y,
            marker="s" if lstm else "o",
            facecolors="none" if r["accuracy"] is None else colour,
            edgecolors=colour,
            s=40 + r["params"] / 8000,
        )
        # Staggered labels: neighbouring models (similar latency) must stay readable.
        ax.annotate(
            f"{r['arch']} ({r['params'] / 1e3:.0f}k)",
            (r["face_ms_p50"], y),
            fontsize=7,
            xytext=(4, 8 + 14 * (i % 4)),
            textcoords="offset points",
            arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"},
        )
    ax.set_xscale("log")
    ax.set_xlabel("int8 latency per face, ms (ai-edge-litert, 1 thread, median)")
    if have:
        ax.set_ylabel("test accuracy (runs/*/metrics.json)")
    else:
        ax.set_ylabel("accuracy: no trained run yet (latency only)")
        ax.set_yticks([])
    ax.set_title(
        "fer-edge architectures: latency vs accuracy (o CNN, \u25a1 CNN-LSTM; "
        "hollow = no trained run)",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp)
    os.replace(tmp, path)


def main() -> None:
    """Convert, time and plot every architecture."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invokes", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument(
        "--arch", nargs="*", help="only these architectures (their entries in --out are replaced)"
    )
    ap.add_argument("--runs", type=Path, default=REPO / "runs")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "perf" / "latency.json")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "latency_vs_accuracy.png")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from --out")
    args = ap.parse_args()
    if args.replot:
        # Latency does not depend on the weights; only the accuracies change as runs finish.
        payload = json.loads(args.out.read_text())
        for r in payload["models"]:
            r["accuracy"], r["accuracy_source"] = accuracy_of(r["arch"], args.runs)
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
        plot(payload["models"], args.plot)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.models import get_spec, list_models

    faces = representative_faces(100)
    results = []
    for arch in args.arch or list_models():
        spec = get_spec(arch)
        t0 = time.perf_counter()
        data, params = convert_int8(arch, faces)
        conv_s = time.perf_counter() - t0
        r: dict[str, Any] = {
            "arch": arch,
            "kind": spec.kind,
            "params": params,
            "tflite_bytes": len(data),
            "convert_s": round(conv_s, 1),
        }
        r.update(time_model(data, faces, args.invokes, args.warmup))
        if spec.kind == "cnn":
            r["batch4"] = time_batch(data, faces, 4, max(50, args.invokes // 5))
        r["accuracy"], r["accuracy_source"] = accuracy_of(arch, args.runs)
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.arch and args.out.is_file():
        # Timing a few architectures updates their entries and keeps the others'.
        done = {r["arch"] for r in results}
        kept = [r for r in json.loads(args.out.read_text())["models"] if r["arch"] not in done]
        results = sorted(kept + results, key=lambda r: str(r["arch"]))
    payload = {
        "runtime": "ai-edge-litert",
        "threads": 1,
        "invokes": args.invokes,
        "warmup": args.warmup,
        "affinity": sorted(os.sched_getaffinity(0)),
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, args.out)
    plot(results, args.plot)
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
