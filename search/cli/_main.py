"""The `paretotune` command line: its parser, made of the commands' own (each command's
module adds its parser and runs it: `COMMANDS`), and what a command's end becomes. A
user's mistake (a `ParetotuneError`) gets one line per problem and exit code 2 (a cluster
that cannot be reached: 1); a bug exits 1 with its traceback."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Protocol

from paretotune._timeline import mark
from paretotune.cli import (
    _best,
    _dashboard,
    _down,
    _export,
    _knee,
    _logs,
    _pareto,
    _repair,
    _retrain,
    _run,
    _show,
    _status,
    _stop,
    _studies,
    _submit,
    _sync,
    _up,
)
from paretotune.cli._options import SubcommandParser, Subparsers
from paretotune.errors import ClusterError, ParetotuneError, Terminated, first_line

EXIT_BUG = 1

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `cmd | head`
# The machine refused a write or a read: a full or read-only disk, a quota, permissions.
# The user's to fix, so one line, not a traceback.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


class Command(Protocol):
    """A command's module (``paretotune status``: `paretotune.cli._status`): it adds its
    parser (named as its key in `COMMANDS`; a help too long for that line is the module's
    ``HELP``) and runs the arguments parsed, returning the exit code. Its top-level
    imports stay light: every command's module is imported for every command, ``--help``
    included; Optuna, Ray, MLflow and torch are imported where a command uses them."""

    def add_parser(self, subparsers: Subparsers) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# Every command, in the order ``paretotune --help`` lists them.
COMMANDS: dict[str, Command] = {
    "run": _run,
    "submit": _submit,
    "pareto": _pareto,
    "show": _show,
    "studies": _studies,
    "dashboard": _dashboard,
    "status": _status,
    "logs": _logs,
    "stop": _stop,
    "best": _best,
    "knee": _knee,
    "sync": _sync,
    "repair": _repair,
    "export": _export,
    "up": _up,
    "down": _down,
    "retrain": _retrain,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretotune",
        description="Multi-objective search of accuracy vs. training time vs. latency.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    for command in COMMANDS.values():
        command.add_parser(subparsers)
    return parser


class _WarningLine(logging.Handler):
    """paretotune's own logged warnings (a journal's torn tail or corrupt record, a lost
    lease) as ``warning: …`` lines on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    logger = logging.getLogger("paretotune")
    if not any(isinstance(handler, _WarningLine) for handler in logger.handlers):
        logger.addHandler(_WarningLine(logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    mark("main")
    _show_warnings()
    Terminated.received = False  # (a command run in process after one that was stopped)
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except ParetotuneError as err:
        for line in err.lines():
            print(f"error: {line}", file=sys.stderr)
        return 1 if isinstance(err, ClusterError) else EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to write
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {_os_error_line(err, args.command)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        print("interrupted: run the same command again to resume the study", file=sys.stderr)
        terminated = isinstance(stop, Terminated) or Terminated.received
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as err:
        if not _storage_unreachable(err):
            raise
        first = first_line(getattr(err, "orig", None) or err)
        print(f"error: the storage cannot be reached: {first}", file=sys.stderr)
        return 1


def _storage_unreachable(err: Exception) -> bool:
    """A database or Redis storage that refused or dropped the connection (SQLAlchemy's
    OperationalError, redis' ConnectionError): the cluster's to fix, so one line."""
    kind = type(err)
    return (kind.__module__, kind.__name__) in {
        ("sqlalchemy.exc", "OperationalError"),
        ("redis.exceptions", "ConnectionError"),
    }


def _os_error_line(err: OSError, command: str) -> str:
    where = f"{err.filename}: " if err.filename else ""
    line = f"{where}{err.strerror or err} ({errno.errorcode.get(err.errno or 0, 'OSError')})"
    if command == "run":
        line += (
            "; the study keeps every trial recorded before it: fix that, then run the same "
            "command again to resume"
        )
    return line


def entry() -> None:
    """The ``paretotune`` command: `main`, then a quick exit.

    When `main` returns, everything is on disk: the journal syncs each write and the
    MLflow logging process has exited. Ray is stopped in order, a start still under way
    included (a local Ray's agents outlive a raylet that is simply killed, and macOS has
    no parent-death signal), then the rest of the interpreter's teardown is skipped.
    """
    from paretotune.execution import stop_ray_after_study

    stop_ray_after_study()  # this process ends with its study
    try:
        code = main()
    except Exception:  # a bug: its traceback, exit 1, and Ray still stopped in order
        traceback.print_exc()
        code = EXIT_BUG
    from paretotune.execution import stop_ray

    stop_ray()
    mark("ray_stopped")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
