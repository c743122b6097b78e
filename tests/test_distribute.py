"""tf.distribute, mixed precision and mid-epoch backup of ``fer-train train`` on real FER2013
slices, without a GPU: two logical CPU devices stand in for two GPUs (mirrored), two local
processes for two machines (multiworker), and a real ``kill -9`` for a crash."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]

from train.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _cli(args: list[str], logical_cpus: int = 0) -> list[str]:
    """A ``fer-train`` command line; with ``logical_cpus`` the CPU is first split into that many
    logical devices (what ``--distribute mirrored`` then mirrors over), as a GPU machine has
    several GPUs."""
    code = (
        "import sys, tensorflow as tf\n"
        f"n = {logical_cpus}\n"
        "if n: tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0], [tf.config.LogicalDeviceConfiguration()] * n)\n"
        "from train.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", code, "train", *args]


def _history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_kill_9_mid_epoch_resumes_from_the_last_backup(
    tmp_path: Path, fer_slice_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``kill -9`` in the middle of epoch 2; ``--resume`` restores the last step backup and runs
    only the rest of that epoch: the optimizer ends at exactly epochs x steps updates (Keras's
    own BackupAndRestore would replay the epoch from its first step), and history.csv has each
    epoch once."""
    run = tmp_path / "run"
    args = ["--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--limit", "1200", "--batch", "16", "--epochs", "2", "--no-augment", "--backup-every", "3", "--out", str(run)]  # fmt: skip
    log = (tmp_path / "killed.log").open("w")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen(_cli(args), env=_env(), stdout=subprocess.DEVNULL, stderr=log)
    meta = run / "backup" / "backup.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if meta.is_file():
                try:
                    point = json.loads(meta.read_text())
                except json.JSONDecodeError:  # pragma: no cover - written atomically
                    point = {}
                if point.get("epoch") == 1 and point.get("steps", 0) >= 6:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "training ended before the kill: " + (tmp_path / "killed.log").read_text()[-2000:]  # fmt: skip
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        log.close()
    point = json.loads(meta.read_text())  # the last backup the killed process finished
    assert point["epoch"] == 1 and 6 <= point["steps"]
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 0 and not (run / "metrics.json").exists()
    steps_per_epoch = -(-json.loads((run / "config.json").read_text())["data"]["train_rows"] // 16)
    assert point["steps"] < steps_per_epoch

    caplog.set_level("INFO", logger="train")
    assert main(["train", *args, "--resume"]) == 0
    assert f"restored the backup of epoch 2 after step {point['steps']} " in caplog.text
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1]
    import keras

    last = keras.models.load_model(run / "last.keras")
    # Restored at the backup's step, then only the remaining steps of epoch 2 were run.
    assert int(last.optimizer.iterations.numpy()) == 2 * steps_per_epoch
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["status"] == "complete" and cfg["options"]["backup_every"] == 3
    assert not (run / "backup").exists()  # a finished fit removes its backup


#: One small real run, trained alike on one device and on two replicas.
SMALL = ["--arch", "bagga_cnn1", "--limit", "600", "--batch", "32", "--epochs", "2", "--no-augment"]  # fmt: skip


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory, fer_slice_csv: Path) -> Path:
    run = tmp_path_factory.mktemp("single") / "run"
    subprocess.run(_cli([*SMALL, "--data", str(fer_slice_csv), "--out", str(run)]), env=_env(), check=True)  # fmt: skip
    return run


def _assert_matches_single(run: Path, single: Path, replicas: int, workers: int) -> None:
    """Same global batch and learning rate as the one-device run, so the same training up to
    dropout masks (drawn per replica) and summation order: PublicTest-slice accuracy within
    1 point (the issue's target) and each epoch's training loss within 5 %."""
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["status"] == "complete"
    assert cfg["distribute"]["replicas"] == replicas and cfg["distribute"]["workers"] == workers
    assert cfg["distribute"]["global_batch"] == 32 and cfg["distribute"]["per_replica_batch"] == 32 // replicas  # fmt: skip
    acc = json.loads((run / "metrics.json").read_text())["accuracy"]
    ref = json.loads((single / "metrics.json").read_text())["accuracy"]
    assert abs(acc - ref) <= 0.01, (acc, ref)
    got = [float(r["loss"]) for r in _history(run)]
    want = [float(r["loss"]) for r in _history(single)]
    assert len(got) == len(want) == 2
    assert got == pytest.approx(want, rel=0.05)


def test_mirrored_on_two_logical_cpus_matches_one_device(
    tmp_path: Path, fer_slice_csv: Path, single_run: Path
) -> None:
    run = tmp_path / "mirrored"
    args = [*SMALL, "--data", str(fer_slice_csv), "--distribute", "mirrored", "--out", str(run)]
    subprocess.run(_cli(args, logical_cpus=2), env=_env(), check=True)
    _assert_matches_single(run, single_run, replicas=2, workers=1)


def test_multiworker_two_local_processes_match_one_device(
    tmp_path: Path, fer_slice_csv: Path, single_run: Path
) -> None:
    """A two-worker cluster on loopback ports, each worker a process with one CPU device; worker
    0 is the chief and writes the run, worker 1 removes its own folder at the end."""
    run = tmp_path / "mw"
    from train.distribute import localhost_cluster

    args = [*SMALL, "--data", str(fer_slice_csv), "--distribute", "multiworker", "--out", str(run)]
    procs = [subprocess.Popen(_cli(args), env=_env(TF_CONFIG=c)) for c in localhost_cluster(2)]
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0, 0]
    _assert_matches_single(run, single_run, replicas=2, workers=2)
    assert not (tmp_path / "mw.worker1").exists()


def test_mirrored_update_equals_one_device_update() -> None:
    """Three steps of a batch-norm network: two mirrored replicas (synchronized batch norm, loss
    averaged over the global batch) give the one-device weights to float rounding."""
    code = """
import json, sys
import numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from train.distribute import make_engine
from train.options import TrainOptions

def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inp)  # a bias before BN has no gradient
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(keras.layers.Activation("relu")(x))
    m = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    m.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    return m

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
y = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]
out = {}
for mode in (None, "mirrored"):
    eng = make_engine(TrainOptions(arch="bagga_cnn1", data="x", out="x", batch=32, distribute=mode))
    with eng.scope():
        m = build()
        eng.prepare(m)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    m.fit(ds, epochs=3, shuffle=False, verbose=0)
    out[str(mode)] = [w.tolist() for w in m.get_weights()]
    out[str(mode) + "_replicas"] = eng.replicas
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)  # fmt: skip
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["None_replicas"] == 1 and out["mirrored_replicas"] == 2
    import numpy as np

    one, two = out["None"], out["mirrored"]
    assert len(one) == len(two)
    for a, b in zip(one, two, strict=True):
        # Measured: 6e-8 at most; with per-replica batch norm (no Engine.prepare) 3e-2.
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_run_converts_and_evaluates(
    tmp_path: Path, fer_slice_csv: Path, precision: str
) -> None:
    """model.keras of a mixed-precision run is exported in float32: float32 in and out, and it
    converts to int8 (rebuild checked to 1e-4, parity gate) and evaluates."""
    import keras
    import numpy as np

    from convert.cli import main as convert_main

    run = tmp_path / "run"
    args = ["--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--limit", "300", "--epochs", "1", "--precision", precision, "--out", str(run)]  # fmt: skip
    assert main(["train", *args]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["options"]["precision"] == precision and cfg["distribute"]["precision"] == precision  # fmt: skip
    last = keras.models.load_model(run / "last.keras", compile=False)
    assert precision in {layer.dtype_policy.name for layer in last.layers}  # trained mixed...
    model = keras.models.load_model(run / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {
        "float32"
    }  # ...exported in float32
    out = model.predict_on_batch(np.zeros((2, 48, 48, 1), np.float32))
    assert str(out.dtype) == "float32"
    # The tf_keras rebuild must match model.keras to 1e-4 (measured 1.5e-8 after the export; the
    # bf16 last.keras is 5e-4 off and is refused by name). The parity gate is not the point on a
    # one-epoch model, whose near-ties make int8 accuracy noise (as in test_convert).
    tfl = tmp_path / "model.tflite"
    conv = ["--data", str(fer_slice_csv), "--representative", "16", "--max-drop", "100"]
    assert convert_main([str(run / "model.keras"), *conv, "-o", str(tfl)]) == 0
    assert convert_main([str(run / "last.keras"), *conv, "-o", str(tmp_path / "last.tflite")]) == 2
    assert not (tmp_path / "last.tflite").exists()
    assert main(["evaluate", str(tfl), "--data", str(fer_slice_csv), "--out", str(tmp_path / "ev")]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 300 and 0.0 <= metrics["accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--distribute", "multiworker"], {}, "needs TF_CONFIG"),
        (["--distribute", "multiworker"], {"TF_CONFIG": "{nope"}, "TF_CONFIG is not"),
        (
            ["--distribute", "multiworker"],
            {
                "TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'
            },
            "is not in its cluster",
        ),  # fmt: skip
        (["--per-replica-batch"], {}, "--per-replica-batch needs --distribute"),
        (["--backup-every", "0"], {}, "must be a number of steps >= 1"),
        (
            ["--distribute", "mirrored", "--folds", "3"],
            {},
            "not available with --teacher or --folds",
        ),  # fmt: skip
    ],
)
def test_bad_distribute_options_exit_2_nothing_left(
    tmp_path: Path,
    fer_slice_csv: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    run = tmp_path / "bad"
    rc = main(["train", "--arch", "bagga_cnn1", "--data", str(fer_slice_csv), "--epochs", "1", "--out", str(run), *args])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not run.exists()


def test_trim_history_drops_epochs_to_be_retrained(tmp_path: Path) -> None:
    from train.distribute import trim_history

    h = tmp_path / "history.csv"
    h.write_bytes(
        b"epoch,accuracy,loss\r\n0,0.2,1.9\r\n1,0.3,1.8\r\n2,0.31,1.7\r\n"
    )  # as CSVLogger
    trim_history(h, 2)
    assert h.read_bytes() == b"epoch,accuracy,loss\r\n0,0.2,1.9\r\n1,0.3,1.8\r\n"
    trim_history(h, 5)
    assert h.read_bytes().count(b"\n") == 3


def test_per_replica_batch_scales_batch_and_lr() -> None:
    """--per-replica-batch: TF's GLOBAL_BATCH_SIZE = BATCH_SIZE_PER_REPLICA * replicas, and the
    learning rate scaled alike; without it --batch is global and must split evenly."""
    from types import SimpleNamespace

    from edge.errors import ConfigError
    from train.distribute import Engine
    from train.options import TrainOptions

    eng = Engine(SimpleNamespace(num_replicas_in_sync=4), "mirrored", 1, ("chief", 0), "float32")
    opts = TrainOptions(arch="bagga_cnn1", data="x", out="x", batch=32, lr=1e-3, distribute="mirrored")  # fmt: skip
    assert eng.describe(opts)["global_batch"] == 32 and eng.describe(opts)["per_replica_batch"] == 8  # fmt: skip
    scaled = eng.effective(TrainOptions(**{**opts.__dict__, "per_replica_batch": True}))
    assert scaled.batch == 128 and scaled.lr == pytest.approx(4e-3)
    with pytest.raises(ConfigError, match="does not split over 4 replicas"):
        eng.effective(TrainOptions(**{**opts.__dict__, "batch": 30}))


def test_fit_phases_after_a_mid_epoch_backup(tmp_path: Path) -> None:
    """Rest of the backed-up epoch first, then the others; a backup of a finished epoch is stale."""
    from train.distribute import fit_phases

    assert fit_phases(tmp_path, 0, 5) == [(0, 5, 0)]
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "backup.json").write_text('{"epoch": 2, "steps": 40, "weights": "w"}')
    assert fit_phases(tmp_path, 2, 5) == [(2, 3, 40), (3, 5, 0)]
    assert fit_phases(tmp_path, 2, 3) == [(2, 3, 40)]
    assert fit_phases(tmp_path, 3, 5) == [(3, 5, 0)]  # epoch 3 is done: stale, removed
    assert not (tmp_path / "backup").exists()
    assert fit_phases(tmp_path, 5, 5) == []
