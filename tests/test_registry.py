"""Every registered architecture builds in Keras 3 and tf_keras, matches the paper's parameter
count where the paper gives one, and runs a forward pass on real FER2013 faces."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

from train.models import create_model, get_spec, list_models  # noqa: E402

EXPECTED = {
    "savitri_cnn",
    "savitri_cnn_lstm",
    "bagga_cnn1",
    "bagga_cnn_lstm2",
    "bagga_cnn_lstm3",
    "munsarif_res_bilstm",
    "mahastama_stacked_cnn",
}


def test_registry_has_every_seed_architecture() -> None:
    assert set(list_models()) >= EXPECTED


@pytest.fixture(scope="module")
def real_faces(fer_slice_csv) -> np.ndarray:
    import csv

    faces = []
    with open(fer_slice_csv) as f:
        for row in csv.DictReader(f):
            faces.append(np.array(row["pixels"].split(), dtype=np.float32).reshape(48, 48, 1))
            if len(faces) == 4:
                break
    return np.stack(faces)


@pytest.mark.parametrize("name", list_models())  # the whole registry, not a hand-kept list
@pytest.mark.parametrize("backend", ["keras", "tf_keras"])
def test_build_count_forward(name: str, backend: str, real_faces: np.ndarray) -> None:
    spec = get_spec(name)
    model = create_model(name, backend=backend)
    assert model.name == name
    if spec.paper_params is not None:
        assert model.count_params() == spec.paper_params
    probs = np.asarray(model(real_faces, training=False))
    assert probs.shape == (4, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert spec.kind in ("cnn", "cnn_lstm")
    # The seed recorded is the one of the module that builds it (one module per seed paper);
    # every paper's seed is a seed file, only fer-edge's own design is not.
    module = sys.modules[spec.builder.__module__]
    assert spec.seed == module.SEED
    assert spec.seed.endswith(".txt") or module.__name__ == "train.models.feredge"


@pytest.mark.parametrize("num_classes", [4, 8])
def test_num_classes(num_classes: int) -> None:
    assert create_model("bagga_cnn1", num_classes=num_classes).output_shape == (None, num_classes)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(KeyError) as e:
        create_model("resnet9000")
    assert "bagga_cnn1" in str(e.value) and "resnet9000" in str(e.value)


def test_models_json_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["bagga_cnn1"]["params"] == 117_031
    assert by_name["bagga_cnn_lstm2"]["params"] == 303_495
    assert by_name["bagga_cnn_lstm3"]["params"] == 457_863
    assert sorted(by_name) == sorted(list_models())
    assert {r["kind"] for r in rows} == {"cnn", "cnn_lstm"}
    assert all(set(r) >= {"name", "params", "seed", "kind"} for r in rows)
