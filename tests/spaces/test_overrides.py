"""One typed `Overrides`: `paretotune run`'s (and `submit`'s) options, `run_study`'s
keywords and `StudySpec.with_overrides` read the same list, and a name that is not in it
is one line naming it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from paretotune import Overrides, SpecError, run_study
from paretotune.cli._main import _parser
from paretotune.cli._options import overrides_of
from paretotune.cli._submit import SUBMIT_OVERRIDES
from paretotune.spaces import StudySpec, validate_spec
from paretotune.spaces._overrides import flag_of, override_fields

EVERY = Overrides(
    trials=7,
    workers=3,
    epochs=4,
    timeout_s=12.5,
    name="other",
    sampler="nsga2",
    seed=11,
    device="auto",
    early_stopping="mo_asha",
    constraints=("latency_ms <= 0.2", "accuracy >= 0.5"),
    stop_when="accuracy >= 0.99",
)


def test_every_override_lands_on_its_spec_field():
    spec = validate_spec({"name": "x", "budget": {"epochs": 8}})
    got = spec.with_overrides(EVERY)
    assert (got.budget.trials, got.budget.epochs, got.budget.timeout_s) == (7, 4, 12.5)
    assert got.budget.stop_when == "accuracy >= 0.99"
    assert (got.resources.workers, got.resources.device) == (3, "auto")
    assert (got.name, got.seed, got.sampler.name) == ("other", 11, "nsga2")
    assert got.early_stopping.method == "mo_asha"
    assert got.constraints == ["latency_ms <= 0.2", "accuracy >= 0.5"]
    assert [f.name for f in override_fields()] == list(dataclasses.asdict(EVERY))
    assert spec.with_overrides(**dataclasses.asdict(EVERY)) == got, "keywords: the same"


def test_none_keeps_the_spec_and_keywords_go_on_top():
    spec = validate_spec({"name": "x", "budget": {"trials": 9}, "seed": 3})
    assert spec.with_overrides() == spec
    assert spec.with_overrides(Overrides(trials=None)) == spec
    got = spec.with_overrides(Overrides(trials=4, seed=5), seed=6)
    assert (got.budget.trials, got.seed) == (4, 6)
    assert Overrides.of({"trials": 2}, epochs=3) == Overrides(trials=2, epochs=3)


def test_a_name_that_is_no_override_is_one_line_naming_it():
    spec = validate_spec({"name": "x"})
    with pytest.raises(SpecError) as raised:
        spec.with_overrides(trails=5, colour="red")
    lines = str(raised.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("trails: not an override; did you mean 'trials'?")
    assert lines[1].startswith("colour: not an override (the overrides: trials, workers")


def test_run_study_with_a_misspelt_override_names_it_and_creates_nothing(
    tmp_path: Path,
):
    journal = tmp_path / "study.journal"
    with pytest.raises(SpecError, match=r"trails: not an override; did you mean 'trials'\?"):
        run_study({"name": "x"}, storage=str(journal), trails=5)
    with pytest.raises(SpecError, match="trials"):
        run_study({"name": "x"}, storage=str(journal), overrides={"trails": 5})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_an_out_of_range_override_names_the_spec_field(tmp_path: Path):
    with pytest.raises(SpecError, match=r"budget\.trials"):
        run_study({"name": "x"}, storage=str(tmp_path / "s.journal"), trials=0)
    assert list(tmp_path.iterdir()) == []


def test_one_string_is_no_list_of_constraints():
    with pytest.raises(SpecError, match="constraints: a list of conditions"):
        Overrides(constraints="latency_ms <= 1")  # type: ignore[arg-type]
    assert Overrides(constraints=["a <= 1"]).constraints == ("a <= 1",)  # type: ignore[arg-type]


def test_run_offers_every_override_as_an_option_and_reads_them_back():
    parser = _parser()
    args = parser.parse_args(["run", "spec.yaml", *EVERY.as_arguments()])
    assert overrides_of(args) == EVERY
    assert overrides_of(parser.parse_args(["run", "spec.yaml"])) == Overrides()
    help_text = parser._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    for one in override_fields():
        assert flag_of(one) in help_text, one.name
    assert "{auto,tpe,nsga2,random}" in help_text and "{none,mo_asha}" in help_text


def test_submit_offers_the_overrides_it_passes_on():
    parser = _parser()
    given = Overrides(trials=3, workers=2, epochs=1, name="sub")
    args = parser.parse_args(
        ["submit", "s.yaml", "--address", "http://h:8265"] + given.as_arguments()
    )
    assert overrides_of(args) == given
    assert set(SUBMIT_OVERRIDES) < {f.name for f in override_fields()}
    with pytest.raises(SystemExit):
        parser.parse_args(["submit", "s.yaml", "--address", "http://h:8265", "--seed", "1"])


def test_the_spec_and_the_overrides_share_their_literal_values():
    fields = {f.name: f for f in override_fields()}
    from paretotune.spaces._overrides import choices_of

    sampler = StudySpec.model_fields["sampler"].annotation.model_fields["name"]  # type: ignore[union-attr]
    assert choices_of(fields["sampler"]) == ["auto", "tpe", "nsga2", "random"]
    assert sampler.annotation.__args__ == tuple(choices_of(fields["sampler"]) or ())
