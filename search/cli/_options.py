"""The options several commands share (``--storage``, ``--tracking-uri``, ``--json``, the
`Overrides` flags, ...) and the argument types they check. Each command's own module adds
its parser with these (`paretotune.cli._main` lists the commands)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from paretotune.spaces._overrides import Overrides


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an argument it does not know is its own usage error
    (``usage: paretotune pareto …``, exit 2), not the top-level parser's."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


# What a command's `add_parser` adds its parser to: the `paretotune` parser's subcommands.
Subparsers: TypeAlias = "argparse._SubParsersAction[SubcommandParser]"


def port(text: str) -> int:
    """A TCP port number (an argparse ``type``)."""
    number = int(text)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number, 1 to 65535 (got {text})")
    return number


def at_least_one(text: str) -> int:
    """A whole number of 1 or more (an argparse ``type``)."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {text})")
    return number


def add_overrides(parser: argparse.ArgumentParser, only: Sequence[str] = ()) -> None:
    """The options of `Overrides` (``--trials``, ``--timeout``, ``--constraint``, ...), or
    of those named ``only``: flag, type, choices and help all come from its fields."""
    from paretotune.spaces._overrides import (
        choices_of,
        flag_of,
        is_many,
        override_fields,
        value_type,
    )

    for one in override_fields():
        if only and one.name not in only:
            continue
        options: dict = {"dest": one.name, "help": one.metadata["help"]}
        if choices := choices_of(one):
            options["choices"] = choices
        elif (kind := value_type(one)) is not str:
            options["type"] = kind
        if is_many(one):
            options["action"] = "append"
        parser.add_argument(flag_of(one), **options)


def overrides_of(args: argparse.Namespace) -> Overrides:
    """The `Overrides` a command's options give (None where an option was not given)."""
    from paretotune.spaces._overrides import Overrides, override_fields

    return Overrides(
        **{
            one.name: getattr(args, one.name)
            for one in override_fields()
            if hasattr(args, one.name)
        }
    )


def add_query_options(parser: argparse.ArgumentParser) -> None:
    """What `best` and `knee` take after the study: ``--all``, the storage, the MLflow
    URI and ``--json``."""
    parser.add_argument(
        "--all", action="store_true", help="include trials violating the spec's constraints"
    )
    add_storage(parser)
    add_tracking(parser)
    add_json(parser)


def add_tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or the study's own)"
    )


def add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="Optuna storage: a journal file path, sqlite:///…, postgresql://…, mysql://…, "
        "redis://… (default $PARETOTUNE_STORAGE, else paretotune.journal)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
