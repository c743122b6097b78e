"""The one atomic file writer of fer-edge: a file is either the old one or the new one, whole.

Every result file (benchmark reports, ``metrics.json``, plots, ``parity.json``, run-folder
``config.json``/``state.json``) is written to a temporary name in the *same folder* and then
renamed over the target with :func:`os.replace`. Same folder means same filesystem, so the
rename is atomic: a reader (or a crash, or a full disk) never sees a truncated file that looks
complete. On any error the temporary file is removed and the target is left as it was.

File-mode policy (one for the whole package): a written file gets the mode a plain
``open(path, "w")`` would give it, ``0o666`` minus the process umask, whether or not the
target existed before. ``tempfile.mkstemp`` would give ``0o600``, which made the same report
readable or not depending on which tool wrote it. Files that must stay private (a device
config holding a broker password) are not written through here; they are chmod-ed by their
owner.

Durability: the data is ``fsync``-ed before the rename, because on a Raspberry Pi losing power
right after a rename can otherwise leave a zero-length file under the new name.

edge sits at the bottom of the dependency graph (train and convert import it, never the other
way), so this module is here and uses nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["FILE_MODE", "atomic_path", "write_bytes_atomic", "write_json", "write_text_atomic"]

#: Mode bits a new file is created with, before the umask (the policy above).
FILE_MODE = 0o666


def _tmp_name(path: Path, suffix: str) -> Path:
    # Hidden, per process and per call: two writers of the same target (threads, processes)
    # never share a temporary file, and a leftover one is recognisable by its ".tmp" part.
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    For writers that want a file name rather than data (``Figure.savefig``, ``Model.save``).
    The parent folder is created. If the ``with`` body raises, the temporary file is removed,
    ``path`` is untouched and the exception propagates.

    Args:
        path: The target file.
        suffix: Ending of the temporary name, for writers that pick the format by it (Keras
            insists on ``.keras``).

    Yields:
        A fresh, empty file in ``path``'s folder, created with the package's file mode.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(target, suffix)
    # O_EXCL: never write into a file someone else created under our temporary name.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        # BaseException: Ctrl-C in the middle of a write must not leave the temporary behind.
        tmp.unlink(missing_ok=True)
        raise


def _write_with(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring for the guarantees)."""
    _write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    _write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], data: Any, *, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON (plus a final newline) atomically.

    NaN and infinity are refused (``allow_nan=False``): they are not JSON, and a reader in
    another language would fail on the file later instead of the writer failing now.

    Args:
        path: The target file.
        data: A JSON-serializable value.
        sort_keys: Sort object keys (stable diffs for reports kept in git).

    Raises:
        ValueError: if ``data`` holds NaN or infinity.
        TypeError: if ``data`` is not JSON-serializable.
    """
    # Serialize first: a value that cannot be written fails before any file is created.
    text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    write_text_atomic(path, text)
