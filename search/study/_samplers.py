"""The default sampler: TPE while a study is small, NSGA-II once it is large.

Measured here (benchmarks/sampler_scaling.py): multivariate TPE finds slightly better
fronts on small budgets, but one ask costs ~10 ms at 100 trials and ~55 ms at 1,000,
growing linearly; NSGA-II stays near 1 ms at 2,000. ``AutoSampler`` takes TPE's quality
where it is cheap and NSGA-II's flat cost after ``switch_at`` trials. NSGA-II starts its
own generations at the switch (its first population is drawn at random).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    from paretotune.spaces import StudySpec


def build_sampler(spec: StudySpec) -> BaseSampler:
    """The sampler the spec names, seeded with the study's seed. TPE and NSGA-II steer
    by the spec's constraints through each trial's constraint values, which the driver
    sets before it tells the trial (`Trial.set_constraint`; random search ignores them)."""
    settings = spec.sampler
    if settings.name == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    with warnings.catch_warnings():  # `group` is "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        nsga2 = RememberingNSGAIISampler(population_size=settings.population_size, seed=spec.seed)
        if settings.name == "nsga2":
            return nsga2
        tpe = optuna.samplers.TPESampler(
            n_startup_trials=settings.startup_trials,
            multivariate=True,
            group=True,  # the space is conditional: each family/optimizer its own group
            constant_liar=True,  # concurrent workers: don't sample the same point twice
            seed=spec.seed,
        )
    if settings.name == "tpe":
        return tpe
    return AutoSampler(tpe, nsga2, switch_at=settings.switch_at)


class RememberingNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II that remembers the current generation's parents: Optuna's finds them again
    among every trial of the study on each ask (12% of the driver's time at 10,000
    trials, benchmarks/README.md). Same parents, same order, same samples (a test pins it
    against Optuna's): the first call answers in selection order, as Optuna's does, and
    the later ones in trial order, as Optuna's lookup does."""

    _parents: tuple[tuple[str, int], list[FrozenTrial]] | None = None

    # Optuna names a GA sampler's trial and study attributes after its class: keep
    # NSGA-II's, so studies written by either class read the same generations and parents
    # (tests/search/test_samplers.py pins the attribute on trials this class sampled).
    @classmethod
    def _get_generation_key(cls) -> str:
        return optuna.samplers.NSGAIISampler._get_generation_key()

    @classmethod
    def _get_parent_cache_key_prefix(cls) -> str:
        return optuna.samplers.NSGAIISampler._get_parent_cache_key_prefix()

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        key = (study.study_name, generation)
        if self._parents is not None and self._parents[0] == key:
            return list(self._parents[1])
        parents = super().get_parent_population(study, generation)
        self._parents = (key, sorted(parents, key=lambda trial: trial.number))
        return parents


class AutoSampler(BaseSampler):
    """Delegates each trial to ``small`` before ``switch_at`` trials exist, else ``large``."""

    def __init__(self, small: BaseSampler, large: BaseSampler, *, switch_at: int = 200):
        self.small = small
        self.large = large
        self.switch_at = switch_at
        self._by_trial: dict[int, BaseSampler] = {}

    def _for(self, study: optuna.Study, trial: FrozenTrial) -> BaseSampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            count = trial.number + 1  # the study's trials so far (numbers count from 0)
            sampler = self.small if count <= self.switch_at else self.large
            self._by_trial[trial.number] = sampler
        return sampler

    def reseed_rng(self) -> None:
        self.small.reseed_rng()
        self.large.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(study, trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._for(study, trial).sample_independent(
            study, trial, param_name, param_distribution
        )

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: optuna.trial.TrialState,
        values: Any,
    ) -> None:
        self._by_trial.pop(trial.number, self.small).after_trial(study, trial, state, values)
