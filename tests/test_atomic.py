"""The one atomic file writer (edge/atomic.py): whole file or old file, never half; one mode."""

from __future__ import annotations

import json
import math
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.atomic import (
    FILE_MODE,
    atomic_path,
    write_bytes_atomic,
    write_json,
    write_text_atomic,
)


@pytest.fixture
def umask_022() -> Iterator[int]:
    old = os.umask(0o022)
    try:
        yield 0o022
    finally:
        os.umask(old)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_text_bytes_and_json_into_a_new_folder(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    write_text_atomic(d / "t.txt", "héllo\n")
    write_bytes_atomic(d / "b.bin", b"\x00\xff")
    write_json(d / "j.json", {"b": 1, "a": [1.5, None]}, sort_keys=True)
    assert (d / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (d / "b.bin").read_bytes() == b"\x00\xff"
    text = (d / "j.json").read_text()
    assert text == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    assert sorted(p.name for p in d.iterdir()) == ["b.bin", "j.json", "t.txt"]


def test_json_keeps_key_order_unless_sorted(tmp_path: Path) -> None:
    write_json(tmp_path / "j.json", {"b": 1, "a": 2})
    assert list(json.loads((tmp_path / "j.json").read_text())) == ["b", "a"]


def test_file_mode_policy_is_umask_based_also_over_a_private_file(
    tmp_path: Path, umask_022: int
) -> None:
    want = FILE_MODE & ~umask_022
    assert want == 0o644
    new = tmp_path / "new.json"
    write_json(new, {})
    assert stat.S_IMODE(new.stat().st_mode) == want
    # A target that happened to be 0600 (mkstemp's mode) gets the policy's mode too: the mode
    # of a report does not depend on which tool wrote it before.
    old = tmp_path / "old.txt"
    old.write_text("x")
    old.chmod(0o600)
    write_text_atomic(old, "y")
    assert stat.S_IMODE(old.stat().st_mode) == want
    with atomic_path(tmp_path / "p.png") as tmp:
        assert stat.S_IMODE(tmp.stat().st_mode) == want


def test_error_mid_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old, complete\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("new, but only ha")
            raise RuntimeError("disk full")
    assert target.read_text() == "old, complete\n"
    assert _leftovers(tmp_path) == []


def test_error_mid_write_of_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "fresh.bin"
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_suffix_for_writers_that_pick_the_format_by_name(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    with atomic_path(target, suffix=".keras") as tmp:
        assert tmp.name.endswith(".tmp.keras") and tmp.parent == tmp_path
        tmp.write_bytes(b"zip")
    assert target.read_bytes() == b"zip"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_interrupt_mid_write_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_refuses_nan_and_writes_nothing(tmp_path: Path, bad: float) -> None:
    target = tmp_path / "r.json"
    target.write_text('{"ok": true}\n')
    with pytest.raises(ValueError, match="Out of range float"):
        write_json(target, {"x": bad})
    assert target.read_text() == '{"ok": true}\n'
    assert _leftovers(tmp_path) == []


def test_unserializable_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(tmp_path / "r.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_never_show_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "shared.txt"
    # Large payloads (1 MiB) so a non-atomic write would be caught half-way by the reader.
    payloads = [str(i) * (1 << 20) for i in range(4)]
    write_text_atomic(target, payloads[0])
    stop = threading.Event()
    seen: set[str] = set()
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            text = target.read_text()
            if text in payloads:
                seen.add(text[0])
            else:
                bad.append(len(text))

    def writer(p: str) -> None:
        for _ in range(5):
            write_text_atomic(target, p)

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    r.join()
    assert bad == []
    assert target.read_text() in payloads
    assert seen  # the reader did read while writers ran
    assert _leftovers(tmp_path) == []
