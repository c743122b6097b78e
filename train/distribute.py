"""Training beyond one device: ``tf.distribute``, mixed precision and mid-epoch backups.

``fer-train train`` options handled here (``train/train.py`` only calls in):

``--distribute mirrored``
    ``tf.distribute.MirroredStrategy`` over the local devices: every GPU, or, without a GPU, every
    logical CPU device (one unless the process split the CPU with
    ``tf.config.set_logical_device_configuration``, which is how the tests run it).
``--distribute multiworker``
    ``tf.distribute.MultiWorkerMirroredStrategy`` across processes or machines described by the
    ``TF_CONFIG`` environment variable. Every worker runs the same command; the chief (task
    ``chief``, or ``worker`` 0 when there is none) writes ``--out``. The other workers keep their
    own backups in ``<out>.worker<i>`` (on their own disk, so ``--resume`` restores the same
    weights everywhere) and remove it when training ends, as TensorFlow's multi-worker guide
    does with its temporary ``workertemp_<i>`` folders.

Batch and learning rate follow TensorFlow's distributed-training guide: Keras splits each global
batch across the replicas and averages the loss over the global batch, so by default ``--batch``
is the global batch and a distributed run computes the same update as one device (seed recipes
such as batch 64 / Adam 1e-3 stay what the paper says). ``--per-replica-batch`` reads ``--batch``
as the guide's ``BATCH_SIZE_PER_REPLICA``: the global batch is ``batch * replicas`` and ``--lr``
is scaled by ``replicas`` (the linear scaling rule), to use more devices for a larger batch.
Batch normalization is switched to ``synchronized=True`` (cross-replica moments) when there is
more than one replica, so its statistics are those of the global batch, as on one device.

``--precision mixed_bfloat16 | mixed_float16``
    Keras mixed precision (float32 variables, 16-bit compute; ``mixed_float16`` gets Keras's
    automatic loss scaling). The variables are float32, so when training ends the best checkpoint
    is copied into the same architecture built in float32 (:func:`export_float32`): the run's
    ``model.keras`` has float32 input, output and compute, which ``fer-convert`` and
    ``fer-train evaluate`` expect.

``--backup-every N``
    Keras ``BackupAndRestore(save_freq=N)`` into ``RUN/backup/``: weights and optimizer state
    every N training steps. After a crash (even ``kill -9``) ``--resume`` restores the last backup
    and runs only the steps of that epoch that were not done yet (Keras's own callback restores
    the weights but replays the epoch from its first step; :class:`~train.backup.StepBackup`
    records the step and :func:`fit_phases` skips it), so a kill costs at most N steps. The
    resumed epoch skips the first steps of a fresh shuffle, not of the killed process's shuffle
    (tf.data's order is not part of the backup), and its training loss/accuracy in
    ``history.csv`` average only the steps run after the restore. The epoch-level ``last.keras`` + ``state.json`` resume is unchanged.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic
from edge.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: ``--distribute`` choices (no flag: one device, TensorFlow's default strategy).
STRATEGIES = ("mirrored", "multiworker")
#: ``--precision`` choices (Keras dtype policies).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: Folder of a run that holds the mid-epoch backup.
BACKUP_DIR = "backup"


def check_options(opts: Any) -> None:
    """Refuse option combinations this module cannot run, before anything is written.

    Raises:
        ConfigError: unknown strategy or precision, a non-positive ``--backup-every``,
            ``--per-replica-batch`` without ``--distribute``, ``--teacher``/``--folds`` with
            ``--distribute``, or ``multiworker`` without a usable ``TF_CONFIG``.
    """
    if opts.distribute is not None and opts.distribute not in STRATEGIES:
        raise ConfigError(
            f"unknown --distribute {opts.distribute!r}; valid: {', '.join(STRATEGIES)}"
        )
    if opts.precision not in PRECISIONS:
        raise ConfigError(f"unknown --precision {opts.precision!r}; valid: {', '.join(PRECISIONS)}")
    if opts.backup_every is not None and opts.backup_every < 1:
        raise ConfigError(f"--backup-every {opts.backup_every}: must be a number of steps >= 1")
    if opts.per_replica_batch and opts.distribute is None:
        raise ConfigError("--per-replica-batch needs --distribute mirrored or multiworker")
    if opts.distribute is not None and (opts.teacher or opts.folds):
        # A teacher runs inside the tf.data pipeline, which the strategy shards and copies to
        # every worker; K-fold would need one worker folder per fold. Neither is supported.
        raise ConfigError("--distribute is not available with --teacher or --folds")
    if opts.distribute == "multiworker":
        tf_config_task()


def tf_config_task() -> tuple[dict[str, list[str]], str, int]:
    """The cluster, task type and task index of this process from ``TF_CONFIG``.

    Raises:
        ConfigError: ``TF_CONFIG`` is unset, not JSON, or does not name this task in its cluster.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "--distribute multiworker needs TF_CONFIG, e.g. "
            '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' (see docs/TRAINING.md)'
        )
    try:
        doc = json.loads(raw)
        cluster = {str(k): [str(a) for a in v] for k, v in doc["cluster"].items()}
        kind, index = str(doc["task"]["type"]), int(doc["task"]["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(
            f"TF_CONFIG is not {{'cluster': {{...}}, 'task': {{'type', 'index'}}}}: {e}"
        ) from None
    if not 0 <= index < len(cluster.get(kind, [])):
        raise ConfigError(f"TF_CONFIG task {kind}:{index} is not in its cluster {cluster}")
    return cluster, kind, index


def localhost_cluster(workers: int) -> list[str]:
    """``TF_CONFIG`` of each process of a ``workers``-process cluster on this machine.

    Rehearses a multi-machine run on one machine (the tests and ``bench/train_speed.py`` use it):
    the ports were free on 127.0.0.1 a moment ago, held together so they differ.
    """
    import socket

    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(workers)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]}
    finally:
        for s in socks:
            s.close()
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(workers)
    ]


@dataclass
class Engine:
    """Where and how one training process computes: its strategy, place and precision."""

    strategy: Any
    name: str | None
    workers: int
    task: tuple[str, int]
    precision: str

    @property
    def replicas(self) -> int:
        """Replicas that share each global batch (devices over all workers)."""
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder (always, without multiworker)."""
        return self.task[0] == "chief"

    def run_dir(self, out: Path) -> Path:
        """The chief's ``out``, or this worker's own ``<out>.worker<i>``."""
        return out if self.is_chief else out.with_name(f"{out.name}.worker{self.task[1]}")

    def effective(self, opts: Any) -> Any:
        """``opts`` with the global batch and learning rate this engine trains with."""
        if not opts.per_replica_batch:
            if opts.batch % self.replicas:
                raise ConfigError(
                    f"--batch {opts.batch} does not split over {self.replicas} replicas; use a "
                    f"multiple of {self.replicas} or --per-replica-batch"
                )
            return opts
        return replace(opts, batch=opts.batch * self.replicas, lr=opts.lr * self.replicas)

    def describe(self, opts: Any) -> dict[str, Any]:
        """The ``distribute`` section of ``config.json``."""
        eff = self.effective(opts)
        return {
            "strategy": self.name or "default",
            "replicas": self.replicas,
            "workers": self.workers,
            "global_batch": eff.batch,
            "per_replica_batch": eff.batch // self.replicas,
            "learning_rate": eff.lr,
            "precision": self.precision,
            "sync_batchnorm": self.replicas > 1,
        }

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build, load and compile models inside this: the strategy's variables, the precision.

        The global dtype policy is restored on exit so nothing built later (evaluation, the
        float32 export, another run in the same process) inherits it.
        """
        import keras

        before = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)
        try:
            with self.strategy.scope():
                yield
        finally:
            keras.config.set_dtype_policy(before)

    def prepare(self, model: Any) -> Any:
        """Cross-replica batch-norm moments when the batch is split over replicas."""
        if self.replicas > 1:
            import keras

            for layer in _layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        return model

    def export(self, path: Path, arch: str, num_classes: int) -> None:
        """The chief's ``model.keras`` as float32 (:func:`export_float32`), checked whatever
        ``--precision`` says: a run resumed with another precision keeps its first policy."""
        if self.is_chief:
            export_float32(path, arch, num_classes)

    def leave(self, run: Path) -> dict[str, Any]:
        """A non-chief worker's end: remove its own folder; the chief reports the run."""
        shutil.rmtree(run, ignore_errors=True)
        log.info("worker %s:%d done; the chief writes the run", *self.task)
        return {"worker": self.task[1]}


def _layers(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def make_engine(opts: Any) -> Engine:
    """Create the strategy of ``opts`` (checked by :func:`check_options`). Call it before any
    other TensorFlow work in the process (TF's rule for ``MultiWorkerMirroredStrategy``).

    Raises:
        ConfigError: ``--batch`` does not split evenly over the replicas.
    """
    engine = _engine(opts.distribute, opts.precision)
    engine.effective(opts)
    return engine


def _engine(distribute: str | None, precision: str) -> Engine:
    import tensorflow as tf

    if distribute is None:
        return Engine(tf.distribute.get_strategy(), None, 1, ("chief", 0), precision)
    if distribute == "multiworker":
        cluster, kind, index = tf_config_task()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _fix_keras_multiworker()
        workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
        # Without a "chief" task, worker 0 is the chief (TensorFlow's convention).
        if kind == "worker" and index == 0 and "chief" not in cluster:
            kind = "chief"
        return Engine(strategy, "multiworker", workers, (kind, index), precision)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        strategy = tf.distribute.MirroredStrategy()  # every GPU, NCCL all-reduce
    else:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # Reduction to one device: NCCL is GPU-only.
        strategy = tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if strategy.num_replicas_in_sync == 1:
        log.warning("--distribute mirrored found one device: training runs on 1 replica")
    return Engine(strategy, "mirrored", 1, ("chief", 0), precision)


def _fix_keras_multiworker() -> None:
    """Make Keras 3.15's ``fit`` run under ``MultiWorkerMirroredStrategy``.

    Keras 3 has two bugs there (keras-team/keras#20585, open; TensorFlow's own multi-worker
    tutorial fails the same way): ``fit`` reduces a sample batch across workers only to learn its
    shapes (a reduce that fails on ``PerReplica`` values), and it reduces each step's scalar logs
    with ``axis=0`` (invalid for a scalar). Both are replaced, for this process only (it is a
    multiworker process): the shapes come from the local replica's batch, and the logs are
    averaged over the workers (each worker's metric covers the same number of samples).
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_fer_multiworker_fix", False):
        return
    reduce_orig = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_orig(values, strategy, reduction)

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(
                    lambda v: (
                        self.distribute_strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    next(it),
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer._fer_multiworker_fix = True


def export_float32(path: Path, arch: str, num_classes: int) -> bool:
    """Rewrite the mixed-precision checkpoint ``path`` as the same architecture in float32.

    Mixed-precision variables are float32 already, so the weights are copied unchanged; only the
    compute dtype of the saved layers changes. Returns whether the file was rewritten.
    """
    import keras

    from edge.contract import DEFAULT_CONTRACT
    from train.models import create_model

    if not path.is_file():
        return False
    src = keras.models.load_model(path, compile=False)
    if all(layer.dtype_policy.name == "float32" for layer in _layers(src)):
        return False
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        dst = create_model(arch, num_classes, DEFAULT_CONTRACT.input_shape)
    finally:
        keras.config.set_dtype_policy(before)
    dst.set_weights(src.get_weights())
    tmp = path.with_name(f".{path.stem}.float32.keras")
    dst.save(tmp)
    os.replace(tmp, path)
    log.info("%s: %s checkpoint exported as float32", path, src.dtype_policy.name)
    return True


# ---- mid-epoch backup -----------------------------------------------------------------------


def read_backup(run: Path) -> tuple[int, int] | None:
    """``(epoch, steps done in it)`` of the run's last mid-epoch backup, or None.

    Raises:
        DataError: the backup's metadata is unreadable.
    """
    meta = run / BACKUP_DIR / "backup.json"
    if not meta.is_file():
        return None
    try:
        doc = json.loads(meta.read_text())
        return int(doc["epoch"]), int(doc["steps"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{meta}: not a backup record ({e})") from None


def fit_phases(run: Path, initial_epoch: int, epochs: int) -> list[tuple[int, int, int]]:
    """The ``(first epoch, end epoch, steps to skip)`` fits that finish a run.

    One fit normally. After a kill mid-epoch with a backup of that epoch: first the rest of the
    epoch (skipping the steps it has done), then the following epochs as an ordinary resume. A
    backup of an epoch that ``state.json`` says is finished is stale and removed.
    """
    point = read_backup(run)
    if point is not None and point[0] != initial_epoch:
        log.info("removing a stale backup of epoch %d (resuming at %d)", point[0] + 1, initial_epoch + 1)  # fmt: skip
        shutil.rmtree(run / BACKUP_DIR, ignore_errors=True)
        point = None
    if initial_epoch >= epochs:
        return []
    if point is None or point[1] == 0:
        return [(initial_epoch, epochs, 0)]
    phases = [(initial_epoch, initial_epoch + 1, point[1])]
    if initial_epoch + 1 < epochs:
        phases.append((initial_epoch + 1, epochs, 0))
    return phases


def backup_callbacks(run: Path, opts: Any, epoch: int, skip: int) -> list[Any]:
    """``[StepBackup]`` when ``opts.backup_every`` is set or a backup is to be restored."""
    if opts.backup_every is None and read_backup(run) is None:
        return []
    return [step_backup(run / BACKUP_DIR, opts.backup_every, epoch, skip)]


def trim_history(path: Path, first_epoch: int) -> None:
    """Drop ``history.csv`` rows of epochs from ``first_epoch`` on (about to be trained again).

    A kill after the CSV row of an epoch but before its ``state.json`` would otherwise leave that
    epoch twice in the history.
    """
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or "epoch" not in rows[0]:
        return
    i = rows[0].index("epoch")
    keep = [rows[0], *(r for r in rows[1:] if r and int(r[i]) < first_epoch)]
    if len(keep) != len(rows):
        log.info("%s: dropping %d rows of epochs to be trained again", path, len(rows) - len(keep))
        buf = io.StringIO()
        csv.writer(buf).writerows(keep)  # the csv module's line ends, as Keras's CSVLogger
        write_text_atomic(path, buf.getvalue())


def step_backup(backup_dir: Path, every: int | None, epoch: int, skip: int) -> Any:
    """A :class:`keras.callbacks.BackupAndRestore` recording steps (:mod:`train.backup`)."""
    from train.backup import StepBackup  # imports Keras: only when a run backs up

    return StepBackup(backup_dir, every, epoch, skip)
