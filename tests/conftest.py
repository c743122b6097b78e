"""Shared fixtures: where the real data lives, small real slices of it.

The data in ``../shared/data`` (FER2013 Training + PublicTest, FERPlus votes, CK+48) is read
in place; nothing is copied into the repository. ``FER_SHARED`` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real mosquitto broker fixtures (`mosquitto`, `mosquitto_factory`) for every test.
pytest_plugins = ["broker_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"
FER_CSV = DATA / "fer2013" / "fer2013-train-publictest.csv.gz"
FERPLUS_CSV = DATA / "fer2013" / "ferplus-train-publictest.csv.gz"
DUPLICATES_CSV = DATA / "fer2013" / "exact-duplicates-train-publictest.csv"
CKPLUS_DIR = DATA / "ckplus" / "CK+48"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data {path} not found: set FER_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The bundled default model (``FER_EDGE_TEST_MODEL`` overrides it for development)."""
    from edge.config import default_model_path

    override = os.environ.get("FER_EDGE_TEST_MODEL")
    path = Path(override) if override else default_model_path()
    if not path.is_file():
        pytest.skip(f"bundled model {path} is absent (the lead bundles edge/models/default.tflite)")
    return path


@pytest.fixture(scope="session")
def fer_csv() -> Path:
    """The real FER2013 Training+PublicTest CSV (gzip)."""
    return _require(FER_CSV)


@pytest.fixture(scope="session")
def ferplus_csv() -> Path:
    """The real FERPlus vote CSV aligned with :func:`fer_csv`."""
    return _require(FERPLUS_CSV)


@pytest.fixture(scope="session")
def duplicates_csv() -> Path:
    """The exact-duplicate index of Training + PublicTest."""
    return _require(DUPLICATES_CSV)


@pytest.fixture(scope="session")
def ckplus_dir() -> Path:
    """CK+48 image folders (``<class>/*.png``)."""
    return _require(CKPLUS_DIR)


@pytest.fixture(scope="session")
def fer_slice_csv(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> Path:
    """A small real slice of FER2013: 1,200 Training rows and 300 PublicTest rows (plain CSV).

    The rows are taken in file order from each split, so row indices stay meaningful only within
    the slice; tests that need original row numbers read the full file.
    """
    import gzip

    out = tmp_path_factory.mktemp("fer") / "fer2013-slice.csv"
    want = {"Training": 1200, "PublicTest": 300}
    got = dict.fromkeys(want, 0)
    with gzip.open(fer_csv, "rt") as src, out.open("w") as dst:
        dst.write(src.readline())
        for line in src:
            usage = line.rstrip("\n").rsplit(",", 1)[-1]
            if got.get(usage, 10**9) < want.get(usage, 0):
                dst.write(line)
                got[usage] += 1
            if got == want:
                break
    return out
