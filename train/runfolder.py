"""A run folder, typed: the one reader and writer of its ``config.json``, ``state.json`` and
``metrics.json``, and of the provenance a later tool copies out of it.

``fer-train train`` and ``fer-train soup`` create run folders; ``compare``, ``report``,
``soup`` (its ingredients), ``--teacher``/``--init-from`` and ``fer-convert`` read them. Before
this module each reader had its own idea of a broken file (an empty dict, ``None``, a
``DataError``, a ``ConfigError``); now there is one rule:

- a **missing** file is ``None``: a run that has not finished has no ``metrics.json``, a model
  copied out of its folder has no ``config.json``, and every caller has a meaning for that
  (not complete, no provenance, labels from the output size);
- a file that exists but cannot be used (unreadable, not JSON, not a JSON object) is a
  :class:`RunFileError` naming the file: a corrupt ``config.json`` silently read as "absent"
  would drop a run from a report or convert a model with the wrong labels.

Files are written through :mod:`edge.atomic` (via :func:`train.metrics.write_json`), so a
crash mid-write leaves the previous version, never half a JSON document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import DataError
from train.metrics import write_json

__all__ = ["PROVENANCE_KEYS", "RunFileError", "RunFolder", "read_json_object"]

#: What a run's ``config.json`` says about where it came from, copied into the records of
#: whatever is built from its checkpoint (a warm start's ``init_from``, soup ingredients, a
#: distillation teacher).
PROVENANCE_KEYS = ("arch", "command", "resumed_with", "commit", "init_from")


class RunFileError(DataError):
    """A run folder's JSON file exists but is unreadable, not JSON or not a JSON object."""


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` if there is no such file.

    Raises:
        RunFileError: the file exists but cannot be read, is not valid JSON or holds something
            other than a JSON object (the message names the file and the reason).
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFileError(f"{p}: unreadable JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RunFileError(f"{p}: expected a JSON object, found {type(doc).__name__}")
    return doc


@dataclass(frozen=True)
class RunFolder:
    """A run folder (``runs/<name>/``) and the JSON files in it.

    Attributes:
        path: The folder.
    """

    path: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: str | os.PathLike[str]) -> RunFolder:
        """The run folder a checkpoint (``RUN/model.keras``) lives in."""
        return cls(Path(checkpoint).parent)

    @property
    def config_path(self) -> Path:
        """``config.json``: what defines the run, its provenance and its ``status``."""
        return self.path / "config.json"

    @property
    def state_path(self) -> Path:
        """``state.json``: what ``--resume`` needs (epoch, best, counters, train time)."""
        return self.path / "state.json"

    @property
    def metrics_path(self) -> Path:
        """``metrics.json``: the run's evaluation; present once the run has finished."""
        return self.path / "metrics.json"

    def read_config(self) -> dict[str, Any] | None:
        """``config.json``, or ``None`` if missing. Raises :class:`RunFileError` if corrupt."""
        return read_json_object(self.config_path)

    def read_state(self) -> dict[str, Any] | None:
        """``state.json``, or ``None`` if missing. Raises :class:`RunFileError` if corrupt."""
        return read_json_object(self.state_path)

    def read_metrics(self) -> dict[str, Any] | None:
        """``metrics.json``, or ``None`` if missing. Raises :class:`RunFileError` if corrupt."""
        return read_json_object(self.metrics_path)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config.json`` atomically."""
        write_json(self.config_path, config)

    def write_state(self, state: Mapping[str, Any]) -> None:
        """Write ``state.json`` atomically."""
        write_json(self.state_path, state)

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Write ``metrics.json`` atomically."""
        write_json(self.metrics_path, metrics)

    def provenance(self) -> dict[str, Any] | None:
        """The :data:`PROVENANCE_KEYS` of ``config.json``, or ``None`` without one."""
        cfg = self.read_config()
        return None if cfg is None else {k: cfg.get(k) for k in PROVENANCE_KEYS}
