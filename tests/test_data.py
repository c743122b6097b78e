"""Data loading on the real FER2013 / FERPlus / CK+48 files, and the leak-free protocol."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from edge.contract import FER2013_LABELS, FERPLUS_LABELS
from edge.errors import DataError
from train.data import concat, load_fer2013, load_image_folder, select_classes
from train.data.dedup import image_hashes, leak_free_train, rows_with_twin
from train.data.faceset import FaceSet
from train.data.fer2013 import FERPLUS_VOTE_COLUMNS, ferplus_targets
from train.data.sampling import fold_groups, kfold_indices, oversample, stratified_limit

OFFICIAL_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830, "surprise": 3171, "neutral": 4965}  # fmt: skip


def test_slice_loads(fer_slice_csv: Path) -> None:
    tr = load_fer2013(fer_slice_csv, "Training")
    pt = load_fer2013(fer_slice_csv, "PublicTest")
    assert (len(tr), len(pt)) == (1200, 300)
    assert tr.images.shape == (1200, 48, 48) and tr.images.dtype == np.uint8
    assert tr.label_names == FER2013_LABELS
    assert set(np.unique(tr.labels)) <= set(range(7))
    both = load_fer2013(fer_slice_csv, ["Training", "PublicTest"])
    assert len(both) == 1500


def test_full_file_matches_official_counts(fer_csv: Path) -> None:
    tr = load_fer2013(fer_csv, "Training")
    assert tr.class_counts() == OFFICIAL_TRAIN
    assert tr.rows[0] == 0 and tr.rows[-1] == 28708
    pt = load_fer2013(fer_csv, "PublicTest")
    assert len(pt) == 3589 and pt.rows[0] == 28709


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _row(emotion: int = 3, n: int = 2304, usage: str = "Training") -> str:
    return f"{emotion},{' '.join(['128'] * n)},{usage}"


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        (["emotion,Usage", "3,Training"], "missing columns ['pixels']"),
        (["emotion,pixels,Usage", _row(), _row(n=2303)], "row 1 (line 3): pixels has 2303 values"),
        (["emotion,pixels,Usage", _row(emotion=9)], "row 0 (line 2): emotion 9 is outside 0..6"),
        (["emotion,pixels,Usage", "x," + _row()[2:]], "emotion 'x' is not an integer"),
        (["emotion,pixels,Usage", _row(usage="Bogus")], "Usage 'Bogus' is not one of"),
        (["emotion,pixels,Usage"], "no data rows"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path: Path, lines: list[str], needle: str) -> None:
    p = _write(tmp_path / "bad.csv", lines)
    with pytest.raises(DataError) as e:
        load_fer2013(p)
    assert needle in str(e.value) and "bad.csv" in str(e.value)


def test_empty_split_and_gzip(tmp_path: Path) -> None:
    p = tmp_path / "t.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write("emotion,pixels,Usage\n" + _row() + "\n")
    assert len(load_fer2013(p, "Training")) == 1
    with pytest.raises(
        DataError, match=r"no rows with Usage \['PublicTest'\]; the file has \['Training'\]"
    ):
        load_fer2013(p, "PublicTest")
    with pytest.raises(DataError, match="file not found"):
        load_fer2013(tmp_path / "missing.csv")


def _votes(**kw: float) -> np.ndarray:
    return np.array([[kw.get(c, 0.0) for c in FERPLUS_VOTE_COLUMNS]], dtype=np.float32)


@pytest.mark.parametrize(
    ("votes", "label8", "label7"),
    [
        (_votes(happiness=10), 3, 3),
        (_votes(anger=6, sadness=4), 0, 0),
        (_votes(neutral=5, surprise=5), -1, -1),  # no strict majority
        (_votes(contempt=7, neutral=3), 7, -1),  # contempt dropped for 7 classes
        (_votes(unknown=6, fear=4), -1, -1),
        (_votes(NF=10), -1, -1),
        # 1-vote outliers are removed before the majority test: 4 of 7 remaining votes.
        (_votes(fear=4, surprise=3, anger=1, disgust=1, sadness=1), 2, 2),
    ],
)
def test_ferplus_majority_rules(votes: np.ndarray, label8: int, label7: int) -> None:
    lab8, soft8 = ferplus_targets(votes, 8)
    lab7, soft7 = ferplus_targets(votes, 7)
    assert (lab8[0], lab7[0]) == (label8, label7)
    assert soft8.shape == (1, 8) and soft7.shape == (1, 7)


def test_ferplus_real_alignment(fer_csv: Path, ferplus_csv: Path) -> None:
    pt = load_fer2013(fer_csv, "PublicTest", labels="ferplus", ferplus_path=ferplus_csv)
    assert pt.label_names == FERPLUS_LABELS
    assert pt.soft is not None and np.allclose(pt.soft.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(pt.labels == pt.soft.argmax(axis=1))
    assert 3000 < len(pt) < 3589  # not-a-face and no-majority rows are dropped
    pt7 = load_fer2013(
        fer_csv, "PublicTest", labels="ferplus", ferplus_path=ferplus_csv, ferplus_classes=7
    )
    assert pt7.label_names == FER2013_LABELS and len(pt7) < len(pt)


def test_fer2013_labels_carry_ferplus_vote_shares(fer_csv: Path, ferplus_csv: Path) -> None:
    """With FER2013 labels, FERPlus votes ride along as 7-class distributions for --ferplus-mix."""
    from train.fit import training_targets

    pt = load_fer2013(fer_csv, "PublicTest", ferplus_path=ferplus_csv)
    assert pt.label_names == FER2013_LABELS and len(pt) == 3589  # no row dropped
    assert pt.soft is not None and pt.soft.shape == (3589, 7)
    assert np.allclose(pt.soft.sum(axis=1), 1.0, atol=1e-5)
    # The annotators disagree with FER2013's label on a real share of rows; the vote shares
    # are not a copy of the one-hot labels.
    disagree = float(np.mean(pt.soft.argmax(axis=1) != pt.labels))
    assert 0.1 < disagree < 0.5
    y = training_targets(pt, soft=False, mix=0.5)
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-5)
    # At mix 0.5 the FER2013 label keeps at least half the mass: it stays the (possibly tied) top.
    own = y[np.arange(len(pt)), pt.labels]
    assert np.all(own >= 0.5) and np.all(own >= y.max(axis=1) - 1e-6)
    assert np.array_equal(training_targets(pt, soft=False), np.eye(7, dtype=np.float32)[pt.labels])
    assert load_fer2013(fer_csv, "PublicTest").soft is None


def test_ferplus_misaligned(tmp_path: Path, fer_slice_csv: Path, ferplus_csv: Path) -> None:
    with pytest.raises(DataError, match="aligned row by row"):
        load_fer2013(fer_slice_csv, labels="ferplus", ferplus_path=ferplus_csv)
    with pytest.raises(DataError, match="aligned row by row"):
        load_fer2013(fer_slice_csv, ferplus_path=ferplus_csv)
    with pytest.raises(DataError, match="needs the FERPlus CSV"):
        load_fer2013(fer_slice_csv, labels="ferplus")


def test_ckplus_folders_and_subsets(ckplus_dir: Path) -> None:
    ck = load_image_folder(ckplus_dir)
    assert len(ck) == 981 and ck.images.shape[1:] == (48, 48)
    assert ck.class_counts()["contempt"] == 54 and ck.class_counts()["surprise"] == 249
    assert ck.groups is not None and len(np.unique(ck.groups)) == 118
    four = select_classes(ck, ("angry", "happy", "neutral", "sad"))
    assert four.label_names == ("angry", "happy", "neutral", "sad")
    assert four.class_counts() == {"angry": 135, "happy": 207, "neutral": 0, "sad": 84}
    with pytest.raises(DataError, match="unknown classes"):
        select_classes(ck, ("joy",))


def test_combined_datasets(fer_slice_csv: Path, ckplus_dir: Path) -> None:
    fer = select_classes(load_fer2013(fer_slice_csv), ("angry", "happy", "sad"))
    ck = select_classes(load_image_folder(ckplus_dir), ("angry", "happy", "sad"))
    both = concat([fer, ck])
    assert len(both) == len(fer) + len(ck)
    with pytest.raises(DataError, match="cannot combine"):
        concat([load_fer2013(fer_slice_csv), ck])


def test_leak_free_protocol_on_real_data(fer_csv: Path) -> None:
    """No evaluation image reaches training; counts match shared/data/README.md."""
    tr = load_fer2013(fer_csv, "Training")
    pt = load_fer2013(fer_csv, "PublicTest")
    clean, rep = leak_free_train(tr, {"PublicTest": pt})
    assert rep.within_train_removed == 1236
    assert rep.conflicting_groups == 39
    assert rep.eval_rows_with_train_twin == {"PublicTest": 280}
    clean_h = set(image_hashes(clean.images).tolist())
    assert not clean_h & set(image_hashes(pt.images).tolist())
    assert len(clean_h) == len(clean)  # no duplicate left inside Training
    # Oversampling after the split only copies training images.
    over = oversample(clean, seed=1)
    assert set(image_hashes(over.images).tolist()) == clean_h
    counts = np.bincount(over.labels)
    assert counts.min() == counts.max()
    assert len(rows_with_twin(pt, tr)) == 280


def test_twin_rows_match_shared_index(fer_csv: Path, duplicates_csv: Path) -> None:
    import csv

    tr = load_fer2013(fer_csv, "Training")
    pt = load_fer2013(fer_csv, "PublicTest")
    ours = set(rows_with_twin(pt, tr).tolist())
    groups: dict[str, set[str]] = {}
    rows_by_group: dict[str, list[int]] = {}
    with open(duplicates_csv) as f:
        for r in csv.DictReader(f):
            groups.setdefault(r["group"], set()).add(r["Usage"])
            rows_by_group.setdefault(r["group"], []).append(int(r["row"]))
    theirs = {
        row
        for g, usages in groups.items()
        if {"Training", "PublicTest"} <= usages
        for row in rows_by_group[g]
        if row >= 28709
    }
    assert ours == theirs


def test_sampling_helpers(fer_slice_csv: Path) -> None:
    tr = load_fer2013(fer_slice_csv)
    lim = stratified_limit(tr, 300, seed=0)
    assert len(lim) <= 300 and set(lim.class_counts()) == set(tr.class_counts())
    folds = kfold_indices(tr.labels, 5, seed=0)
    val_all = np.concatenate([v for _, v in folds])
    assert sorted(val_all.tolist()) == list(range(len(tr)))
    for t, v in folds:
        assert not set(t.tolist()) & set(v.tolist())


def _groups_in_one_fold(folds: list[tuple[np.ndarray, np.ndarray]], groups: np.ndarray) -> bool:
    """Whether every group's rows are validated in exactly one fold (and trained on elsewhere)."""
    fold_of_group: dict[int, set[int]] = {}
    for f, (tr, va) in enumerate(folds):
        if set(groups[tr].tolist()) & set(groups[va].tolist()):
            return False  # a group on both sides of one fold
        for g in np.unique(groups[va]).tolist():
            fold_of_group.setdefault(g, set()).add(f)
    return all(len(fs) == 1 for fs in fold_of_group.values())


def test_group_aware_folds_keep_ckplus_subjects_together(ckplus_dir: Path) -> None:
    ck = load_image_folder(ckplus_dir)
    assert ck.groups is not None
    groups = fold_groups(ck)
    # A subject is never split (fold groups are subjects, or unions of them via duplicates).
    for s in np.unique(ck.groups):
        assert len(np.unique(groups[ck.groups == s])) == 1
    folds = kfold_indices(ck.labels, 5, seed=0, groups=groups)
    val_all = np.concatenate([v for _, v in folds])
    assert sorted(val_all.tolist()) == list(range(len(ck)))
    assert _groups_in_one_fold(folds, ck.groups)
    # The check can fail: plain stratified folds put one subject's images in several folds.
    assert not _groups_in_one_fold(kfold_indices(ck.labels, 5, seed=0), ck.groups)
    with pytest.raises(ValueError, match="needs at least 200 groups, the data has"):
        kfold_indices(ck.labels, 200, groups=groups)


def test_group_aware_folds_keep_duplicate_images_together(fer_slice_csv: Path) -> None:
    fer = load_fer2013(fer_slice_csv)
    # FER2013 holds 1,236 extra copies inside Training; a set that was not de-duplicated (or a
    # combined one) keeps them: add real copies of 150 real rows, some of them twice.
    rng = np.random.default_rng(0)
    picked = rng.choice(len(fer), 150, replace=False)
    data = concat([fer, fer.subset(picked), fer.subset(picked[:40])])
    groups = fold_groups(data)
    hashes = image_hashes(data.images)
    assert len(np.unique(groups)) == len(np.unique(hashes))
    folds = kfold_indices(data.labels, 5, seed=1, groups=groups)
    assert _groups_in_one_fold(folds, groups)
    by_hash = np.unique(hashes, return_inverse=True)[1]
    assert _groups_in_one_fold(folds, by_hash)
    assert not _groups_in_one_fold(kfold_indices(data.labels, 5, seed=1), by_hash)


def test_kfold_run_passes_groups_to_the_splitter(
    fer_slice_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.kfold hands the group-aware folds to training: no image is on both sides of a
    fold. Fitting and evaluation are replaced by recorders: only the split is under test."""
    from train import fit
    from train.kfold import run_kfold
    from train.options import TrainOptions

    fer = load_fer2013(fer_slice_csv)
    data = concat([fer, fer.subset(np.arange(0, 300, 3))])
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fake_fit(run: Path, train: FaceSet, val: FaceSet, opts: object) -> dict[str, object]:
        seen.append((image_hashes(train.images), image_hashes(val.images)))
        return {}

    monkeypatch.setattr(fit, "fit_model", fake_fit)
    monkeypatch.setattr(fit, "finish_run", lambda run, va, extra: {"accuracy": 0.5})
    opts = TrainOptions(arch="x", data=str(fer_slice_csv), out=str(tmp_path), folds=4)
    run_kfold(tmp_path, data, opts)
    assert len(seen) == 4
    for tr_h, va_h in seen:
        assert not set(tr_h.tolist()) & set(va_h.tolist())
