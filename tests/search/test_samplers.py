"""The default sampler hands over from TPE to NSGA-II at `switch_at` trials."""

from __future__ import annotations

import optuna
import pytest
from paretotune.spaces import sample_params, validate_spec
from paretotune.study._samplers import build_sampler

GENERATION = "NSGAIISampler:generation"


@pytest.mark.parametrize("name", ["auto", "tpe", "nsga2", "random"])
def test_every_offered_sampler_drives_the_conditional_space(name):
    spec = validate_spec(
        {
            "name": "x",
            "space": {"architecture": ["mlp", "rnn"]},
            "sampler": {"name": name, "switch_at": 15, "population_size": 4},
        }
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=build_sampler(spec))
    for i in range(30):
        trial = study.ask()
        params = sample_params(trial, spec.space)
        assert f"{params['architecture']}." in " ".join(params)
        study.tell(trial, [i % 7 / 7, (i * 3) % 5])
    uses_nsga2 = [GENERATION in t.system_attrs for t in study.trials]
    if name == "auto":
        assert not any(uses_nsga2[:15]) and all(uses_nsga2[16:])
    elif name == "nsga2":
        assert all(uses_nsga2)
    else:
        assert not any(uses_nsga2)


def test_remembered_parents_give_optunas_own_samples():
    """`RememberingNSGAIISampler` only skips Optuna's lookup: seeded alike, it samples
    exactly what Optuna's NSGA-II samples, through several generations."""
    from paretotune.study._samplers import RememberingNSGAIISampler

    def sampled(sampler: optuna.samplers.BaseSampler) -> list[dict]:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        for i in range(60):
            trial = study.ask()
            x = trial.suggest_float("x", 0, 1)
            kind = trial.suggest_categorical("kind", ["a", "b", "c"])
            study.tell(trial, [x + (kind == "a") * 0.3, (x - 0.5) ** 2 + i % 3])
        assert max(t.system_attrs[GENERATION] for t in study.trials) >= 5
        return [t.params for t in study.trials]

    ours = sampled(RememberingNSGAIISampler(population_size=8, seed=3))
    assert ours == sampled(optuna.samplers.NSGAIISampler(population_size=8, seed=3))
