"""What `paretotune submit` ships: the spec and the dataset file it names, its path
rewritten to the copy; a spec's relative dataset path means the spec's folder, from any
folder a command runs in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from paretotune.cli import _submit
from paretotune.errors import SpecError
from paretotune.spaces import load_spec

SPEC = "name: mine\ndataset: {source: csv, path: data/rows.csv, target: y}\n"


def _study_folder(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    rows = np.column_stack([np.arange(40) % 3, np.arange(40) * 0.5])
    np.savetxt(root / "data" / "rows.csv", rows, delimiter=",", header="y,x", comments="")
    (root / "spec.yaml").write_text(SPEC)
    return root / "spec.yaml"


def test_a_relative_dataset_path_is_the_spec_folders(tmp_path: Path, monkeypatch):
    spec_path = _study_folder(tmp_path / "study")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_spec("../study/spec.yaml")
    assert spec.dataset.path == str(tmp_path / "study" / "data" / "rows.csv")
    assert load_spec(spec_path).dataset.path == spec.dataset.path


def test_the_job_carries_the_dataset_and_a_spec_that_finds_it(tmp_path: Path):
    spec_path = _study_folder(tmp_path / "study")
    job = tmp_path / "job"
    job.mkdir()
    spec = load_spec(spec_path)
    _submit.pack_job(spec_path, spec.dataset.path, job, ship_data=True)
    shipped = yaml.safe_load((job / "spec.yaml").read_text())
    assert shipped["dataset"]["path"] == "data/rows.csv"
    assert (job / "data" / "rows.csv").read_bytes() == (
        spec_path.parent / "data/rows.csv"
    ).read_bytes()
    assert load_spec(job / "spec.yaml").dataset.path == str(job / "data" / "rows.csv")


def test_what_cannot_be_shipped_is_one_line_and_nothing_is_written(tmp_path: Path, monkeypatch):
    spec_path = _study_folder(tmp_path / "study")
    spec = load_spec(spec_path)
    job = tmp_path / "job"
    job.mkdir()
    monkeypatch.setattr(_submit, "SHIP_LIMIT_MIB", 0.0001)
    with pytest.raises(SpecError, match=r"dataset.path: .*rows.csv is 0 MiB, more than submit"):
        _submit.pack_job(spec_path, spec.dataset.path, job, ship_data=True)
    with pytest.raises(SpecError, match="'data/rows.csv' is relative; with --data-on-cluster"):
        _submit.pack_job(spec_path, spec.dataset.path, job, ship_data=False)
    assert list(job.iterdir()) == []
