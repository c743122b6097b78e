"""Probe: does per-channel equalization before int8 conversion raise int8/float agreement?

int8 activations are quantized per tensor: one scale for all channels, so a tensor whose
channels span very different ranges spends the 256 levels on its widest channel. Two places in
``feredge_sepnet`` can be rescaled per channel without changing the float function:

- inside each ``SeparableConv2D`` (depthwise, then pointwise, nothing between): channel ``c``
  of the depthwise kernel times ``s_c``, row ``c`` of the pointwise kernel divided by ``s_c``;
- with ``--bn``, a BatchNorm whose output passes a ReLU into exactly one separable conv:
  ``gamma_c, beta_c`` times ``s_c`` (ReLU commutes with a positive scale), that conv's
  depthwise channel ``c`` divided by ``s_c``.

``s_c = (R / a_c) ** power`` (``a_c``: the channel's largest magnitude on the representative
faces, ``R``: the tensor's), capped at ``--cap``. The result is a run folder (the source run's
files, the rescaled ``model.keras``) for ``fer-convert``, whose parity report on the run's own
validation split is the measurement (docs/RESULTS.md, "int8 agreement"):

    python3 bench/equalize.py runs/sepnet-kd-s2 runs/eq --power 0.5
    fer-convert runs/eq/model.keras --data $D -o eq.tflite --report eq-report
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: (BatchNorm, the separable conv its ReLU output feeds alone) in ``feredge_sepnet``.
BN_INTO_SEPARABLE = [("stem0_bn", "stem1_sep")] + [(f"s{i}a_bn", f"s{i}b_sep") for i in range(3)]


def channel_scales(peak: np.ndarray, power: float, cap: float) -> np.ndarray:
    """``(max(peak) / peak) ** power`` per channel, at most ``cap``."""
    floor = peak.max() / cap ** (1.0 / power)
    return (peak.max() / np.maximum(peak, floor)) ** power


def equalize(model: Any, faces: np.ndarray, power: float, cap: float, bn: bool) -> list[str]:
    """Rescale ``model`` in place; return one line per rescaled tensor."""
    import keras
    import tensorflow as tf

    def inputs_of(layer: Any) -> np.ndarray:
        return np.asarray(keras.Model(model.inputs, layer.input).predict(faces, verbose=0))

    lines = []
    for bn_name, sep_name in BN_INTO_SEPARABLE if bn else []:
        norm, sep = model.get_layer(bn_name), model.get_layer(sep_name)
        h = inputs_of(sep)
        s = channel_scales(h.reshape(-1, h.shape[-1]).max(0), power, cap)
        gamma, beta, mean, var = (np.asarray(w) for w in norm.get_weights())
        norm.set_weights([gamma * s, beta * s, mean, var])
        depthwise, pointwise = (np.asarray(w) for w in sep.get_weights())
        sep.set_weights([depthwise / s[None, None, :, None], pointwise])
        lines.append(f"{bn_name} -> {sep_name}: largest scale {s.max():.1f}")
    for layer in model.layers:
        if not isinstance(layer, keras.layers.SeparableConv2D):
            continue
        depthwise, pointwise = (np.asarray(w) for w in layer.get_weights())
        inner = tf.nn.depthwise_conv2d(inputs_of(layer), depthwise, [1, 1, 1, 1], "SAME").numpy()
        s = channel_scales(np.abs(inner).reshape(-1, inner.shape[-1]).max(0), power, cap)
        layer.set_weights([depthwise * s[None, None, :, None], pointwise / s[None, None, :, None]])
        lines.append(f"{layer.name} (inner): largest scale {s.max():.1f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a feredge_sepnet run folder (model.keras, config.json)")
    ap.add_argument("out", type=Path, help="new run folder to write")
    ap.add_argument(
        "--data", default=str(REPO.parent / "shared/data/fer2013/fer2013-train-publictest.csv.gz")
    )
    ap.add_argument("--power", type=float, default=0.5)
    ap.add_argument("--cap", type=float, default=16.0)
    ap.add_argument("--bn", action="store_true", help="also the BatchNorm -> separable tensors")
    ap.add_argument("--representative", type=int, default=500)
    args = ap.parse_args()

    from edge.contract import to_model_input
    from train.data.fer2013 import load_fer2013
    from train.data.sampling import stratified_sample
    from train.predict import load_keras_model

    model = load_keras_model(args.run / "model.keras")
    if model.name != "feredge_sepnet":
        sys.exit(f"{args.run}: a {model.name} model; this probe knows feredge_sepnet's layers")
    rep = stratified_sample(load_fer2013(args.data, "Training"), args.representative, 0)
    faces = np.concatenate([to_model_input(f) for f in rep.images])
    before = model.predict(faces, verbose=0)
    for line in equalize(model, faces, args.power, args.cap, args.bn):
        print(line)
    change = float(np.abs(model.predict(faces, verbose=0) - before).max())
    print(f"largest probability change in float: {change:.2e} (the function is unchanged)")
    args.out.mkdir(parents=True, exist_ok=False)
    for f in args.run.iterdir():
        if f.is_file() and f.suffix != ".keras":
            shutil.copy2(f, args.out / f.name)
    model.save(args.out / "model.keras")
    print(f"wrote {args.out / 'model.keras'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
