"""Spec validation: good specs load with documented defaults, bad ones name field and value."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paretotune import ExpressionError
from paretotune.spaces import (
    EXAMPLES_DIR,
    SpecError,
    StudySpec,
    load_spec,
    parse_expression,
    sample_params,
    validate_spec,
)


def test_example_digits_spec_loads_as_written():
    spec = load_spec(EXAMPLES_DIR / "digits.yaml")
    assert spec.name == "digits-tradeoff"
    assert spec.dataset.source == "digits"
    assert spec.resolved_objectives() == {
        "accuracy": "maximize",
        "train_time_s": "minimize",
        "latency_ms": "minimize",
    }
    assert spec.space.architecture == ["mlp"]
    assert spec.space.batch_size == [32, 64, 128]
    assert spec.space.learning_rate == {"low": 1e-4, "high": 0.1, "log": True, "step": None}
    assert spec.budget.trials == 30 and spec.budget.epochs == 15
    assert spec.resources.workers == 2


def test_minimal_spec_gets_documented_defaults():
    spec = validate_spec({"name": "tiny"})
    assert spec.dataset.source == "digits"
    assert spec.space.architecture == ["mlp"]
    assert spec.space.optimizer == ["sgd", "adam", "adamw", "rmsprop"]
    assert spec.space.compression == ["none"]
    assert spec.budget.trials == 30 and spec.budget.epochs == 15
    assert spec.resources.workers == 2 and spec.resources.device == "cpu"
    assert spec.sampler.name == "auto" and spec.sampler.switch_at == 200
    assert spec.resolved_objectives() == {
        "accuracy": "maximize",
        "train_time_s": "minimize",
        "latency_ms": "minimize",
    }


def test_regression_dataset_defaults_to_mse():
    spec = validate_spec({"name": "reg", "dataset": {"source": "diabetes"}})
    assert next(iter(spec.resolved_objectives())) == "mse"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "x", "colour": 1}, "colour: unknown key"),
        (
            {"name": "x", "budget": {"trials": 0}},
            "budget.trials: Input should be greater than or equal to 1 (got 0)",
        ),
        ({"name": "x", "budget": {"trails": 5}}, "budget.trails: unknown key"),
        ({"name": "x", "resources": {"workers": "two"}}, "resources.workers: "),
        (
            {"name": "x", "space": {"architecture": ["mlp", "resnet"]}},
            "space.architecture: 'resnet' is not one of: mlp, cnn, rnn, transformer",
        ),
        (
            {"name": "x", "space": {"optimizer": ["adagrad"]}},
            "space.optimizer: 'adagrad' is not one of: sgd, adam, adamw, rmsprop",
        ),
        (
            {"name": "x", "space": {"learning_rate": {"low": 0.1, "high": 0.001}}},
            "space.learning_rate: `low <= high` must hold, but got (low=0.1, high=0.001)",
        ),
        (
            {
                "name": "x",
                "space": {
                    "optimizer": ["adamw"],
                    "adamw": {"weight_decay": {"low": 0.0, "high": 0.1, "log": True}},
                },
            },
            "space.adamw.weight_decay: a log range needs `low > 0`, but got low=0.0",
        ),
        (
            {"name": "x", "space": {"batch_size": [0, 32]}},
            "space.batch_size: 0 is below the minimum 1",
        ),
        ({"name": "x", "space": {"batch_size": []}}, "space.batch_size: an empty list of choices"),
        (
            {"name": "x", "space": {"mlp": {"width": {"low": 64, "high": 8}}}},
            "space.mlp.width: `low <= high` must hold, but got (low=64, high=8)",
        ),
        (
            {"name": "x", "space": {"mlp": {"heads": [2]}}},
            "space.mlp.heads: unknown knob; mlp knows: depth, width, activation, dropout",
        ),
        (
            {"name": "x", "space": {"cnn": {"channels": [8]}}},
            "space.cnn: has settings but 'cnn' is not in space.architecture ['mlp']",
        ),
        ({"name": "x", "objectives": {"acc": "maximize"}}, "objectives: 'acc' is not a metric"),
        (
            {"name": "x", "objectives": {"accuracy": "max"}},
            "objectives.accuracy: Input should be 'maximize' or 'minimize' (got 'max')",
        ),
        (
            {"name": "x", "objectives": {"mse": "minimize"}},
            "objectives.mse: not produced by a classification task",
        ),
        ({"name": "x", "dataset": {"source": "csv"}}, "dataset: source 'csv' needs `path`"),
        ({"name": "bad name!"}, "name: 'bad name!' must start with a letter or digit"),
        (
            {"name": "x", "measure": {"latency_on": {"resources": {}}}},
            "measure.latency_on.resources: an empty mapping",
        ),
        (
            {"name": "x", "measure": {"latency_on": {"resources": {"edge": 0}}}},
            "measure.latency_on.resources.edge: 0.0 must be positive",
        ),
        ({"name": "x", "measure": {"latency_of": {}}}, "measure.latency_of: unknown key"),
        (
            {"name": "x", "space": {"learning_rate": {"low": float("nan"), "high": 0.1}}},
            "space.learning_rate: nan is not a finite number",
        ),
        (
            {"name": "x", "space": {"learning_rate": float("nan")}},
            "space.learning_rate: nan is not a finite number",
        ),
        (
            {"name": "x", "space": {"learning_rate": [0.1, float("inf")]}},
            "space.learning_rate: inf is not a finite number",
        ),
        (
            {"name": "x", "space": {"learning_rate": {"low": "1e-4", "high": 0.1}}},
            "space.learning_rate: '1e-4' is not a number (YAML reads an exponent without a "
            "dot as text: write 1.0e-4)",
        ),
        ({"name": "x", "seed": 10**26}, "seed: Input should be less than or equal to 4294967295"),
        ({"name": "x", "budget": {"trials": 10**23}}, "budget.trials: Input should be less"),
        ({}, "name: required key is missing"),
    ],
)
def test_bad_spec_names_field_and_value(data, expected):
    with pytest.raises(SpecError) as caught:
        validate_spec(data)
    assert any(line.startswith(expected) for line in caught.value.problems), caught.value.problems


def test_several_problems_give_one_line_each():
    data = {"name": "x", "budget": {"trials": -1}, "space": {"batch_size": [0]}, "extra": 1}
    with pytest.raises(SpecError) as caught:
        validate_spec(data)
    assert len(caught.value.problems) == 3
    assert all("\n" not in line for line in caught.value.problems)


def test_yaml_errors_are_one_line(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nspace: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken.yaml is not valid YAML at line"):
        load_spec(broken)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        load_spec(scalar)


def test_overrides_are_validated():
    spec = validate_spec({"name": "x"})
    assert spec.with_overrides(trials=5, workers=3).budget.trials == 5
    with pytest.raises(Exception, match="greater than or equal to 1"):
        spec.with_overrides(trials=0)


def _sample(spec: StudySpec, seed: int) -> dict:
    study = optuna.create_study(
        directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    return sample_params(study.ask(), spec.space)


def test_sampling_is_conditional_on_family_and_optimizer():
    spec = validate_spec(
        {
            "name": "x",
            "space": {
                "architecture": ["mlp", "rnn"],
                "optimizer": ["sgd", "adamw"],
                "mlp": {"depth": 2},
                "rnn": {"hidden_size": {"low": 8, "high": 16}},
            },
        }
    )
    seen = set()
    for seed in range(40):
        params = _sample(spec, seed)
        family, optimizer = params["architecture"], params["optimizer"]
        seen.add((family, optimizer))
        owned = {k.split(".")[0] for k in params if "." in k}
        assert owned == {family, optimizer} - {"adam"}
        if family == "mlp":
            assert params["mlp.depth"] == 2
        else:
            assert 8 <= params["rnn.hidden_size"] <= 16
    assert len(seen) == 4


def test_bounds_are_inclusive():
    spec = validate_spec({"name": "x", "space": {"batch_size": {"low": 3, "high": 4}}})
    drawn = {_sample(spec, seed)["batch_size"] for seed in range(30)}
    assert drawn == {3, 4}


def test_fixed_values_are_not_optuna_params():
    spec = validate_spec({"name": "x", "space": {"batch_size": 64, "optimizer": ["adam"]}})
    study = optuna.create_study(directions=["maximize"])
    trial = study.ask()
    params = sample_params(trial, spec.space)
    assert params["batch_size"] == 64 and params["optimizer"] == "adam"
    assert "batch_size" not in trial.params and "optimizer" not in trial.params


def test_a_key_given_twice_and_absurd_nesting_are_one_line_each(tmp_path: Path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: x\nbudget: {trials: 5}\nbudget: {trials: 6}\n")
    with pytest.raises(SpecError, match=r"at line 3: the key 'budget' is given twice"):
        load_spec(twice)
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\nspace: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SpecError, match="nested too deeply"):
        load_spec(deep)
    for text in ("(" * 3000 + "accuracy < 1" + ")" * 3000, "not " * 3000 + "accuracy < 1"):
        with pytest.raises(SpecError, match="nested too deeply"):
            validate_spec({"name": "x", "constraints": [text]})


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["mlp", "cnn", "adam", "sgd", "none", "1e-4", "low", "high", "log"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["low", "high", "log", "step", "x", "mlp"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
_SECTIONS = [
    "dataset",
    "objectives",
    "space",
    "budget",
    "resources",
    "validation",
    "sampler",
    "early_stopping",
    "measure",
    "seed",
    "constraints",
    "bogus",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_SECTIONS), _VALUES, max_size=4))
def test_a_broken_spec_raises_only_the_spec_error(sections: dict):
    try:
        validate_spec({"name": "x", **sections})
    except SpecError as err:
        assert err.problems and all(isinstance(line, str) and line for line in err.problems)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="()<>=!&|. _-+*/0123456789eandortlcy_msaz", max_size=60))
def test_a_broken_condition_raises_only_the_expression_error(text: str):
    try:
        parse_expression(text)
    except ExpressionError:
        pass


def test_yaml_merge_keys_merge_and_their_keys_may_be_overridden(tmp_path: Path):
    spec = tmp_path / "merge.yaml"
    spec.write_text(
        "name: x\nspace:\n  optimizer: [sgd, rmsprop]\n"
        "  sgd: &shared {momentum: 0.5}\n  rmsprop:\n    <<: *shared\n    momentum: 0.1\n"
    )
    space = load_spec(spec).space
    assert space.sgd == {"momentum": 0.5} and space.rmsprop == {"momentum": 0.1}
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: x\nsgd: &s {momentum: 0.5}\nspace:\n  sgd: {<<: *s, a: 1, a: 2}\n")
    with pytest.raises(SpecError, match="the key 'a' is given twice"):
        load_spec(twice)


def test_a_folder_a_huge_file_and_a_huge_value_are_one_short_line(tmp_path: Path):
    with pytest.raises(SpecError, match=r"is a folder; give the spec's YAML file"):
        load_spec(tmp_path)
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\nbudget: {trials: '" + "a" * 2_000_000 + "'}\n")
    with pytest.raises(SpecError, match=r"holds 2,000,\d+ bytes; a spec is at most 1,048,576"):
        load_spec(huge)
    long = tmp_path / "long.yaml"
    long.write_text("name: x\nbudget: {trials: '" + "a" * 50_000 + "'}\n")
    with pytest.raises(SpecError) as refused:
        load_spec(long)
    [line] = (
        refused.value.args[0] if isinstance(refused.value.args[0], list) else [str(refused.value)]
    )
    assert len(str(line)) < 400 and "(50,002 characters)" in str(line)
