"""The step-level backup callback of ``--backup-every`` (see :mod:`train.distribute`).

A module of its own because it subclasses a Keras callback, so importing it imports Keras;
:func:`train.distribute.step_backup` imports it only when a run backs up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras

from train.distribute import log, read_backup
from train.metrics import write_json


class StepBackup(keras.callbacks.BackupAndRestore):  # type: ignore[misc]
    """Keras ``BackupAndRestore(save_freq=every)`` that records the step and saves atomically.

    Each backup is a new ``*.weights.h5`` (weights + optimizer state) followed by an atomic
    ``backup.json`` naming it, so a kill during a save leaves the previous backup whole. The
    record carries the steps done in the epoch (Keras's own records only the epoch, and
    resets it to 0 after a restore).

    Args:
        backup_dir: ``RUN/backup``.
        every: Steps between backups (None: only restore an existing backup).
        epoch: The first epoch of this fit.
        skip: Steps of ``epoch`` already done (the fit's dataset skips them).
    """

    def __init__(self, backup_dir: Path, every: int | None, epoch: int, skip: int) -> None:
        super().__init__(str(backup_dir), save_freq=every or "epoch")
        self.every, self.dir, self.skip = every, Path(backup_dir), skip
        self._current_epoch = epoch

    def on_train_begin(self, logs: Any = None) -> None:
        point = read_backup(self.dir.parent)
        if point is None:
            return
        doc = json.loads((self.dir / "backup.json").read_text())
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.dir / doc["weights"])
        log.info(
            "restored the backup of epoch %d after step %d (optimizer step %d)",
            point[0] + 1, point[1], int(self.model.optimizer.iterations.numpy()),
        )  # fmt: skip

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._current_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # Nothing is saved at an epoch's end: last.keras + state.json are the epoch backup.
        self.skip, self._last_batch_seen = 0, 0

    def _save_model(self) -> None:
        if self.every is None:
            return
        steps = self.skip + self._last_batch_seen + 1
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{self._current_epoch}-step{steps}.weights.h5"
        self.model.save_weights(self.dir / name, overwrite=True)
        write_json(
            self.dir / "backup.json",
            {"epoch": self._current_epoch, "steps": steps, "weights": name},
        )
        for old in self.dir.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()
