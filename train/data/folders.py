"""Image-folder datasets (``<root>/<class>/*.png``, e.g. CK+48), resized to the contract."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.contract import DEFAULT_CONTRACT, FERPLUS_LABELS, PreprocessContract, resize_to_contract
from edge.errors import DataError
from train.data.faceset import FaceSet

#: Folder names used by public FER datasets -> our label names.
CLASS_ALIASES = {
    "anger": "angry", "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "happiness": "happy", "sadness": "sad", "sad": "sad", "surprise": "surprise",
    "neutral": "neutral", "contempt": "contempt",
}  # fmt: skip
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm"}


def load_image_folder(
    root: str | Path,
    label_names: tuple[str, ...] = FERPLUS_LABELS,
    contract: PreprocessContract = DEFAULT_CONTRACT,
) -> FaceSet:
    """Load ``<root>/<class>/<image>`` files as grayscale faces in the contract's size.

    Folder names are mapped through :data:`CLASS_ALIASES`; classes not in ``label_names`` are
    skipped. CK+ file names (``S005_001_00000011.png``) give the subject as the group id so
    evaluation can split by subject.

    Raises:
        DataError: if the folder is missing, an image is unreadable, or nothing was loaded.
    """
    import cv2

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of <class>/ image folders")
    images: list[np.ndarray] = []
    labels: list[int] = []
    groups: list[int] = []
    subjects: dict[str, int] = {}
    for name, f in _labelled_files(root, label_names):
        im = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if im is None:
            raise DataError(f"{f}: unreadable image")
        images.append(resize_to_contract(im, contract))
        labels.append(label_names.index(name))
        m = re.match(r"(S\d+)_", f.name)
        subj = m.group(1) if m else f.stem
        groups.append(subjects.setdefault(subj, len(subjects)))
    if not images:
        raise DataError(f"{root}: no images in class folders matching {list(label_names)}")
    return FaceSet(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64),
        rows=np.full(len(images), -1, dtype=np.int64),
        label_names=tuple(label_names),
        source=f"folder {root}",
        groups=np.asarray(groups, dtype=np.int64),
    )


def _labelled_files(root: Path, label_names: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """``(class, image file)`` of each image in a class folder ``label_names`` keeps, sorted."""
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        name = CLASS_ALIASES.get(d.name.lower())
        if name is None or name not in label_names:
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                yield name, f
