"""Probe: does quantization-aware fine-tuning raise a model's int8/float agreement?

Not part of the package: it needs ``pip install tensorflow-model-optimization`` (0.8.1, which
works on the ``tf_keras`` twin that ``fer-convert`` already builds). The trained model is
rebuilt in ``tf_keras``, wrapped by tfmot's default 8-bit scheme (the in-model Rescaling gets an
output-only quantizer), the range averages are warmed up on Training faces, and the wrapped
model is fine-tuned to the float model's own outputs (self-distillation, KL; the face or its
mirror, BatchNorms frozen) on the leak-free Training faces without the TrainVal slice. It is
converted like ``fer-convert`` does (int8 in and out, builtins only) and scored against the
float model on TrainVal, through TensorFlow's interpreter (the file has no fer-edge metadata):

    python3 bench/qat_probe.py runs/sepnet-kd-s2/model.keras --out qat.tflite --epochs 0.3 --lr 1e-5

docs/RESULTS.md, "int8 agreement", has what it measured.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BATCH = 64


def quantize_wrapped(model: Any) -> Any:
    """``model`` (Keras 3, feredge_sepnet-like) as a tfmot quantization-aware tf_keras model."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from edge.contract import DEFAULT_CONTRACT
    from train.models import create_model

    qk = tfmot.quantization.keras

    class OutputOnly(qk.QuantizeConfig):  # type: ignore[misc]
        """The Rescaling layer: no weights, its int8 output quantized like the converter's."""

        def get_weights_and_quantizers(self, layer: Any) -> list[Any]:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list[Any]:
            return []

        def set_quantize_weights(self, layer: Any, weights: Any) -> None:
            pass

        def set_quantize_activations(self, layer: Any, activations: Any) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            return [qk.quantizers.MovingAverageQuantizer(8, False, False, False)]

        def get_config(self) -> dict[str, Any]:
            return {}

    twin = create_model(
        model.name, model.output_shape[-1], DEFAULT_CONTRACT.input_shape, backend="tf_keras"
    )
    twin.set_weights(model.get_weights())

    def annotate(layer: Any) -> Any:
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if isinstance(layer, tf_keras.layers.Rescaling):
            return qk.quantize_annotate_layer(layer, quantize_config=OutputOnly())
        return qk.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    annotated.set_weights(twin.get_weights())
    with qk.quantize_scope({"OutputOnly": OutputOnly}):
        wrapped = qk.quantize_apply(annotated)
    for layer in wrapped.layers:
        if isinstance(getattr(layer, "layer", None), tf_keras.layers.BatchNormalization):
            layer.layer.trainable = False  # inference-mode BN: the float model's statistics
    return wrapped


def batches(images: np.ndarray, targets: np.ndarray, mirrored: np.ndarray) -> Iterator[Any]:
    """Endless shuffled batches of (face or its mirror, the float model's output on it)."""
    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(images))
        for i in range(0, len(order) - BATCH + 1, BATCH):
            b = order[i : i + BATCH]
            flip = rng.random(BATCH) < 0.5
            x = np.where(flip[:, None, None], images[b][:, :, ::-1], images[b])
            yield x.astype(np.float32)[..., None], np.where(flip[:, None], mirrored[b], targets[b])


def tflite_probs(data: bytes, faces: np.ndarray) -> np.ndarray:
    """Dequantized outputs of an int8 TFLite model, one face per invoke."""
    import tensorflow as tf

    it = tf.lite.Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (in_scale, in_zp), (out_scale, out_zp) = inp["quantization"], out["quantization"]
    rows = []
    for face in faces:
        q = np.clip(np.round(face.astype(np.float32) / in_scale + in_zp), -128, 127)
        it.set_tensor(inp["index"], q.astype(np.int8)[None, ..., None])
        it.invoke()
        rows.append((it.get_tensor(out["index"])[0].astype(np.float32) - out_zp) * out_scale)
    return np.array(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="a trained .keras model")
    ap.add_argument("--out", type=Path, required=True, help="the .tflite to write")
    ap.add_argument(
        "--data", default=str(REPO.parent / "shared/data/fer2013/fer2013-train-publictest.csv.gz")
    )
    ap.add_argument("--epochs", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--warm", type=int, default=3000, help="range warm-up steps of 16 faces")
    args = ap.parse_args()

    import tensorflow as tf
    import tf_keras

    from convert.quantize import check_converted, representative_dataset
    from edge.contract import DEFAULT_CONTRACT
    from edge.model_meta import parse_tflite
    from train.data.dedup import leak_free_train
    from train.data.fer2013 import load_fer2013
    from train.data.sampling import stratified_sample
    from train.predict import load_keras_model, predict_probs

    model = load_keras_model(args.model)
    val = load_fer2013(args.data, "TrainVal")
    train, _ = leak_free_train(load_fer2013(args.data, "Training"), {"TrainVal": val})
    faces = train.images
    targets = predict_probs(model, faces)
    mirrored = predict_probs(model, np.ascontiguousarray(faces[:, :, ::-1]))
    wrapped = quantize_wrapped(model)

    warm = tf.function(lambda x: wrapped(x, training=True))
    rng = np.random.default_rng(1)
    for _ in range(args.warm):
        warm(tf.constant(faces[rng.integers(0, len(faces), 16)].astype(np.float32)[..., None]))
    spec = (
        tf.TensorSpec((BATCH, 48, 48, 1), tf.float32),
        tf.TensorSpec((BATCH, targets.shape[1]), tf.float32),
    )
    data = tf.data.Dataset.from_generator(
        lambda: batches(faces, targets, mirrored), output_signature=spec
    )
    wrapped.compile(
        optimizer=tf_keras.optimizers.Adam(args.lr), loss=tf_keras.losses.KLDivergence()
    )
    print(
        f"KL to the float model before fine-tuning: {wrapped.evaluate(data, steps=20, verbose=0):.4f}"
    )
    steps = max(1, int(args.epochs * len(faces) / BATCH))
    wrapped.fit(data.prefetch(2), steps_per_epoch=steps, epochs=1, verbose=2)

    s = DEFAULT_CONTRACT.size
    inp = tf_keras.Input(shape=(s, s, 1), batch_size=1, name="image")
    conv = tf.lite.TFLiteConverter.from_keras_model(
        tf_keras.Model(inp, wrapped(inp, training=False))
    )
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(
        stratified_sample(load_fer2013(args.data, "Training"), 500, 0).images
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    blob = bytes(conv.convert())
    check_converted(parse_tflite(blob, str(args.out)), "int8", str(args.out))
    args.out.write_bytes(blob)
    p_float, p_int8 = predict_probs(model, val.images), tflite_probs(blob, val.images)
    agree = float(np.mean(p_float.argmax(1) == p_int8.argmax(1)))
    print(
        f"TrainVal ({len(val)} faces): float {np.mean(p_float.argmax(1) == val.labels):.4f}, "
        f"int8 {np.mean(p_int8.argmax(1) == val.labels):.4f}, agreement {agree:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
