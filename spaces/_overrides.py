"""`Overrides`: what one run may replace in its spec, listed once.

`paretotune run`'s options (and `submit`'s), `run_study`'s keywords and
`StudySpec.with_overrides` all read this one list: a field's name, its type (the literal
values of the spec's ``sampler.name``, ``early_stopping.method`` and ``measure.precise``
are defined here and used by the spec), the spec field it replaces, its command-line flag
and its help. A name that is not here is refused with a line naming it (and the nearest
override), as a spec's unknown field is.

It imports neither pydantic nor Optuna (`paretotune.spaces` loads its names on first
use): the command line's parser is built from it on every command.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from paretotune.errors import SpecError

SamplerName = Literal["auto", "tpe", "nsga2", "random"]  # the spec's sampler.name
StoppingMethod = Literal["none", "mo_asha"]  # the spec's early_stopping.method
PreciseMeasurement = Literal["candidates", "all"]  # the spec's measure.precise


def _override(target: str, help: str, *, flag: str = "") -> Any:
    """A field of `Overrides`: None (the spec's value) unless given. ``target``: the
    spec field it replaces (dotted); ``flag``: the command-line option (default
    ``--name-with-dashes``)."""
    return field(default=None, metadata={"target": target, "help": help, "flag": flag})


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """The spec values a run replaces; None keeps the spec's own. Values are checked as
    the spec's are when applied (`StudySpec.with_overrides`), so an out-of-range one is a
    `SpecError` naming the spec field (``budget.trials``)."""

    trials: int | None = _override("budget.trials", "total trial budget (finished trials count)")
    workers: int | None = _override("resources.workers", "trials run at once")
    epochs: int | None = _override("budget.epochs", "epochs per trial")
    timeout_s: float | None = _override(
        "budget.timeout_s", "stop asking for trials after S s", flag="--timeout"
    )
    name: str | None = _override("name", "study name (default: the spec's name)")
    sampler: SamplerName | None = _override("sampler.name", "the Optuna sampler")
    seed: int | None = _override("seed", "seeds the sampler, the splits and the initialisation")
    device: str | None = _override(
        "resources.device",
        "where trials train: cpu, cuda, cuda:N or auto (default: the spec's resources.device)",
    )
    early_stopping: StoppingMethod | None = _override(
        "early_stopping.method", "stop unpromising trials early"
    )
    constraints: tuple[str, ...] | None = _override(
        "constraints",
        "a condition a feasible trial meets, e.g. 'latency_ms <= 0.2' (repeatable; replaces "
        "the spec's constraints)",
        flag="--constraint",
    )
    precise: PreciseMeasurement | None = _override(
        "measure.precise",
        "which models get the precise latency measurement: those that could join the front "
        "(candidates) or all",
    )
    stop_when: str | None = _override(
        "budget.stop_when",
        "end the study once a feasible trial meets this, e.g. 'accuracy >= 0.98'",
    )

    def __post_init__(self) -> None:
        if self.constraints is not None and not isinstance(self.constraints, tuple):
            if isinstance(self.constraints, str):
                raise SpecError(
                    [f"constraints: a list of conditions, got one string {self.constraints!r}"]
                )
            object.__setattr__(self, "constraints", tuple(self.constraints))

    @classmethod
    def of(
        cls, given: Overrides | Mapping[str, Any] | None = None, /, **keywords: Any
    ) -> Overrides:
        """``given`` (an `Overrides` or a mapping) with ``keywords`` on top.

        Raises:
            SpecError: a name that is no override, one line each, naming it, the nearest
                override and the list.
        """
        if isinstance(given, Overrides):
            return dataclasses.replace(given, **cls._checked(keywords)) if keywords else given
        return cls(**cls._checked({**(given or {}), **keywords}))

    @classmethod
    def _checked(cls, keywords: Mapping[str, Any]) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in keywords if key not in names]
        if unknown:
            listed = ", ".join(names)
            lines = []
            for key in unknown:
                near = difflib.get_close_matches(key, names, n=1)
                guess = f"; did you mean {near[0]!r}?" if near else ""
                lines.append(f"{key}: not an override{guess} (the overrides: {listed})")
            raise SpecError(lines)
        return dict(keywords)

    def given(self) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
        """Each field given (not None), with its value, in the order of the fields."""
        for one in dataclasses.fields(self):
            value = getattr(self, one.name)
            if value is not None:
                yield one, value

    def apply_to(self, data: dict[str, Any]) -> dict[str, Any]:
        """Writes the given values into ``data`` (a spec's ``model_dump()``) at their
        targets; returns ``data``."""
        for one, value in self.given():
            *sections, last = one.metadata["target"].split(".")
            place = data
            for section in sections:
                place = place.setdefault(section, {})
            place[last] = list(value) if isinstance(value, tuple) else value
        return data

    def as_arguments(self) -> list[str]:
        """The `paretotune run` options giving these overrides (a submitted job's)."""
        arguments = []
        for one, value in self.given():
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                arguments += [flag_of(one), str(item)]
        return arguments


def override_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields of `Overrides`, in order."""
    return dataclasses.fields(Overrides)


def flag_of(one: dataclasses.Field[Any]) -> str:
    """The command-line option of an `Overrides` field."""
    return str(one.metadata["flag"] or "--" + one.name.replace("_", "-"))


def is_many(one: dataclasses.Field[Any]) -> bool:
    """Whether an `Overrides` field holds several values (``--constraint``, repeatable)."""
    return typing.get_origin(_inner(one)) is tuple


def value_type(one: dataclasses.Field[Any]) -> type:
    """What one value of an `Overrides` field is (``int`` for ``int | None``, ``str`` for
    ``tuple[str, ...] | None`` and for a literal's values)."""
    inner = _inner(one)
    if typing.get_origin(inner) is tuple:
        inner = typing.get_args(inner)[0]
    return str if typing.get_origin(inner) is Literal else inner


def choices_of(one: dataclasses.Field[Any]) -> list[str] | None:
    """The values an `Overrides` field may take, when they are a literal's."""
    inner = _inner(one)
    return list(typing.get_args(inner)) if typing.get_origin(inner) is Literal else None


def _inner(one: dataclasses.Field[Any]) -> Any:
    """The type of an `Overrides` field without its ``| None``."""
    hint = typing.get_type_hints(Overrides)[one.name]
    return next(arg for arg in typing.get_args(hint) if arg is not type(None))
