"""Provenance: where a run's code came from (``config.json``'s ``commit``), where a checkpoint
came from (its hash and its run), and the check that a checkpoint reused by another run (a soup
ingredient, a distillation teacher, a warm start) comes from a finished leak-free run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.model_meta import file_sha256
from train.runfolder import RunFolder


def git_commit() -> str | None:
    """HEAD's commit, suffixed ``-dirty`` when tracked files differ from it (exact provenance)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=5, cwd=here, check=False
            )
        except OSError:
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return None
    return f"{head}-dirty" if git("status", "--porcelain", "--untracked-files=no") else head


def checkpoint_provenance(path: Path) -> dict[str, Any]:
    """Where a checkpoint came from: its hash and, if beside it, its run's provenance.

    Recorded for a warm start's parent (``init_from``), a soup's ingredients and a teacher.
    """
    info: dict[str, Any] = {"path": str(path), "sha256": file_sha256(path)}
    parent = RunFolder.of_checkpoint(path).provenance()
    if parent is not None:
        info["parent"] = parent
    return info


def leak_free_run_config(path: Path, what: str, val_usage: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of the finished leak-free run that the checkpoint ``path`` came from.

    Soup ingredients and distillation teachers must come from such runs: a checkpoint trained on
    the validation split (or under seed 002's leaky protocol) would carry it into the result.

    Args:
        path: A ``.keras`` checkpoint inside a run folder.
        what: How the checkpoint is used, for the error message (``"--teacher"``).
        val_usage: If given, the run must have been validated on (so never trained on) this split.

    Raises:
        ConfigError: no such file, no ``config.json`` beside it, a leaky protocol or another
            validation split.
        DataError: ``config.json`` is not valid JSON.
    """
    if not path.is_file():
        raise ConfigError(f"{what} {path}: no such file")
    cfg = RunFolder.of_checkpoint(path).read_config()
    if cfg is None:
        raise ConfigError(f"{what} {path}: no config.json beside it (its run is needed)")
    return check_leak_free(cfg, path, what, val_usage)


def check_leak_free(
    cfg: dict[str, Any], path: Path, what: str, val_usage: str | None = None
) -> dict[str, Any]:
    """The checks of :func:`leak_free_run_config` on a run config already read (a run's
    ``config.json``, or the ``training`` section a ``.tflite`` carries); returns ``cfg``."""
    options = cfg.get("options") or {}
    protocol = options.get("protocol", "leak-free")
    if protocol != "leak-free":
        raise ConfigError(f"{what} {path}: trained with protocol {protocol!r}; only leak-free runs")
    used = options.get("val_usage") or (cfg.get("soup") or {}).get("val_usage")
    if val_usage is not None and used not in (None, val_usage):
        raise ConfigError(
            f"{what} {path}: validated on {used!r}, not {val_usage!r}; it may have trained on it"
        )
    return cfg
