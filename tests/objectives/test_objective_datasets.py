"""Datasets: bundled and user files load; unusable ones fail with one naming line."""

from __future__ import annotations

import numpy as np
import pytest
from paretotune.objectives import DatasetError, DatasetInfo, dataset_info, load_dataset


def test_builtin_infos():
    digits = dataset_info({"source": "digits"})
    assert (digits.task, digits.n_rows, digits.n_features, digits.n_classes) == (
        "classification",
        1797,
        64,
        10,
    )
    assert digits.image_shape == (1, 8, 8) and digits.sequence_shape == (8, 8)
    assert all(digits.supports(f) for f in ("mlp", "cnn", "rnn", "transformer"))
    wine = dataset_info({"source": "wine"})
    assert wine.image_shape is None and wine.sequence_shape is None
    assert wine.supports("mlp") and not wine.supports("cnn") and not wine.supports("rnn")
    diabetes = dataset_info({"source": "diabetes"})
    assert diabetes.task == "regression" and diabetes.n_classes is None


def test_family_check_names_family_and_dataset():
    with pytest.raises(ValueError, match="'cnn'.*'wine'"):
        dataset_info({"source": "wine"}).check_family("cnn")


def test_loading_is_cached_per_process():
    from paretotune.objectives._datasets import read_dataset

    assert read_dataset({"source": "wine"}) is read_dataset({"source": "wine"})


def test_holdout_split_sizes_are_stratified_and_seeded():
    splits = load_dataset({"source": "digits"}, seed=3, test_fraction=0.2, val_fraction=0.25)
    (fold,) = splits.folds
    assert len(splits.y_test) == 360
    assert len(fold.y_train) + len(fold.y_val) + len(splits.y_test) == 1797
    assert set(np.bincount(splits.y_test)) <= {35, 36, 37}  # stratified: ~36 per class
    again = load_dataset({"source": "digits"}, seed=3, test_fraction=0.2, val_fraction=0.25)
    np.testing.assert_array_equal(again.folds[0].y_val, fold.y_val)


def test_kfold_split_covers_train_val_once():
    splits = load_dataset({"source": "wine"}, seed=0, kfold=4)
    assert len(splits.folds) == 4
    n_rest = 178 - len(splits.y_test)
    assert sum(len(f.y_val) for f in splits.folds) == n_rest
    assert all(len(f.y_train) + len(f.y_val) == n_rest for f in splits.folds)


def test_csv_with_string_labels(tmp_path):
    path = tmp_path / "flowers.csv"
    rng = np.random.default_rng(0)
    lines = ["a,b,kind"] + [
        f"{rng.normal():.3f},{rng.normal():.3f},{'rose' if i % 2 else 'tulip'}" for i in range(40)
    ]
    path.write_text("\n".join(lines) + "\n")
    info = dataset_info({"source": "csv", "path": str(path), "target": "kind"})
    assert (info.task, info.n_rows, info.n_features, info.n_classes) == ("classification", 40, 2, 2)
    splits = load_dataset({"source": "csv", "path": str(path), "target": "kind"}, seed=0)
    assert splits.class_labels == ("rose", "tulip")


def test_csv_float_target_is_regression_and_task_can_be_overridden(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    spec = {"source": "csv", "path": str(path), "target": "y"}
    assert dataset_info(spec).task == "classification"
    assert dataset_info({**spec, "task": "regression"}).task == "regression"
    path2 = tmp_path / "r2.csv"
    path2.write_text("x,y\n" + "".join(f"{i},{i * 0.37}\n" for i in range(30)))
    assert dataset_info({"source": "csv", "path": str(path2), "target": "y"}).task == "regression"


@pytest.mark.parametrize(
    ("shape", "image", "sequence"),
    [((60, 6, 5), (1, 6, 5), (6, 5)), ((60, 3, 4, 5), (3, 4, 5), (4, 15)), ((60, 7), None, None)],
)
def test_npz_shapes(tmp_path, shape, image, sequence):
    path = tmp_path / "x.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=shape), y=np.arange(60) % 3)
    info: DatasetInfo = dataset_info({"source": "npz", "path": str(path)})
    assert info.image_shape == image and info.sequence_shape == sequence
    assert info.n_features == int(np.prod(shape[1:])) and info.n_classes == 3
    splits = load_dataset({"source": "npz", "path": str(path)}, seed=0)
    assert splits.folds[0].X_train.shape[1] == info.n_features


def test_edited_file_is_read_again(tmp_path):
    import os

    path = tmp_path / "d.csv"
    path.write_text("a,t\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    spec = {"source": "csv", "path": str(path), "target": "t"}
    assert dataset_info(spec).n_rows == 10
    path.write_text("a,t\n" + "".join(f"{i},{i % 2}\n" for i in range(12)))
    os.utime(path, ns=(1, 10**18))
    assert dataset_info(spec).n_rows == 12


def _csv(tmp_path, text: str) -> str:
    path = tmp_path / "x.csv"
    path.write_text(text)
    return str(path)


def test_error_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset\.path: file '.*nope\.csv' does not exist"):
        dataset_info({"source": "csv", "path": str(tmp_path / "nope.csv"), "target": "y"})


def test_error_missing_target_lists_columns(tmp_path):
    path = _csv(tmp_path, "a,b,c\n1,2,3\n4,5,6\n")
    with pytest.raises(
        DatasetError, match=r"dataset\.target: column 'label' not in x\.csv \(columns: a, b, c\)"
    ):
        dataset_info({"source": "csv", "path": path, "target": "label"})


def test_an_error_never_echoes_a_file_that_is_no_csv(tmp_path):
    """A dataset path naming a system file (its first line a secret): the error names
    the file and the problem, never the line."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3tHash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    with pytest.raises(DatasetError) as refused:
        dataset_info({"source": "csv", "path": str(secret), "target": "label"})
    assert "s3cr3t" not in str(refused.value) and "root" not in str(refused.value)
    assert str(refused.value) == (
        "dataset.target: column 'label' not in shadow (its first line is no header of plain "
        "column names: is it a CSV file?)"
    )


def test_error_non_numeric_feature(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,x,0\n2,y,1\n3,z,0\n4,w,1\n")
    with pytest.raises(DatasetError, match=r"dataset\.path: column 'b' of x\.csv is not numeric"):
        dataset_info({"source": "csv", "path": path, "target": "y"})


def test_error_nan(tmp_path):
    path = _csv(tmp_path, "a,b,y\n,1,0\n2,1,1\n,1,0\n,1,1\n")
    with pytest.raises(
        DatasetError, match=r"dataset\.path: x\.csv has 3 NaN values \(column 'a'\)"
    ):
        dataset_info({"source": "csv", "path": path, "target": "y"})


def test_error_class_with_one_row(tmp_path):
    path = _csv(tmp_path, "a,y\n1,0\n2,0\n3,1\n4,1\n5,7\n")
    with pytest.raises(
        DatasetError, match=r"dataset: class 7 has 1 row; at least 2 per class are needed"
    ):
        dataset_info({"source": "csv", "path": path, "target": "y"})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"source": "mnist"}, "dataset.source: 'mnist'"),
        ({"source": "digits", "colour": 1}, "dataset.colour: unknown key"),
        ({"source": "csv"}, "dataset.path: required"),
        ({"source": "digits", "task": "ranking"}, "dataset.task: 'ranking'"),
        ({"source": "digits", "image_shape": [2, 8, 8]}, "dataset.image_shape"),
    ],
)
def test_other_errors_name_the_field(spec, fragment):
    with pytest.raises(DatasetError, match=fragment.replace(".", r"\.")):
        dataset_info(spec)


def test_npz_errors(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, X=np.zeros((4, 2)))
    with pytest.raises(DatasetError, match=r"dataset\.path: x\.npz has no array 'y'"):
        dataset_info({"source": "npz", "path": str(path)})
    np.savez(path, X=np.array([["a", "b"]] * 4), y=np.arange(4) % 2)
    with pytest.raises(DatasetError, match=r"array 'X' of x\.npz is not numeric"):
        dataset_info({"source": "npz", "path": str(path)})


@pytest.mark.parametrize("source", ["digits", "wine", "breast_cancer", "diabetes"])
def test_the_bundled_sets_known_info_is_what_loading_them_gives(source: str):
    from paretotune.objectives._datasets import BUILTIN_INFO, read_dataset

    assert BUILTIN_INFO[source] == read_dataset({"source": source}).info


def test_checking_a_bundled_set_imports_neither_scikit_learn_nor_torch():
    import subprocess
    import sys

    probe = (
        "import sys; from paretotune import objectives; "
        "objectives.dataset_info({'source': 'digits'}); "
        "print('sklearn' in sys.modules, 'torch' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.stdout.split() == ["False", "False"], found.stderr


def test_a_directory_path_and_a_single_class_read_as_plain_words(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset.path: '.*' is a directory, not a csv file"):
        dataset_info({"source": "csv", "path": str(tmp_path), "target": "y"})
    (tmp_path / "one.csv").write_text("a,y\n1,0\n2,0\n3,0\n")
    with pytest.raises(DatasetError, match=r"only one class \(0\); at least 2") as caught:
        dataset_info({"source": "csv", "path": str(tmp_path / "one.csv"), "target": "y"})
    assert "np." not in str(caught.value)
