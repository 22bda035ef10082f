"""Every error paretotune raises for a user's mistake, under one root.

Catch `ParetotuneError` to handle them all. Each also inherits the builtin it stands in
for (``ValueError``, ``LookupError``, ``RuntimeError``), so code written against those
keeps working. The CLI turns these, and only these, into one line and exit code 2 (a
cluster that cannot be reached: 1); anything else is a bug and keeps its traceback.

This module imports nothing of paretotune's: every room may raise these.
"""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """An error's first line, for a one-line message (its type where it says nothing)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class ParetotuneError(Exception):
    """The root of paretotune's errors: the user's input or environment, not a bug."""

    def lines(self) -> list[str]:
        """The one-line messages the CLI prints for this error."""
        return [str(self.args[0]) if self.args else type(self).__name__]


class SpecError(ParetotuneError, ValueError):
    """A spec is invalid. ``problems`` holds one line per problem, each naming the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def lines(self) -> list[str]:
        return list(self.problems)


class ExpressionError(ParetotuneError, ValueError):
    """A condition (``where``, ``constraints``) is malformed; the message quotes it and
    says where."""


class DatasetError(ParetotuneError, ValueError):
    """A dataset that cannot be used; the one-line message names the field and the value."""


class StudyNotFoundError(ParetotuneError, LookupError):
    """No study of that name in the storage; the message lists the ones that exist."""


class StudyBusyError(ParetotuneError, RuntimeError):
    """Another live driver is running the study; the message names it, and ``holder`` (a
    `paretotune.study._lock.Holder`, set where the lock raised it) says who, as data."""

    holder: object = None


class UnsafeFileError(ParetotuneError, PermissionError):
    """A file paretotune would write through is not a plain file of this user's (a
    symbolic or hard link another local user could have planted): it is left alone."""


class CorruptJournalError(ParetotuneError, ValueError):
    """A journal file holds a line that is no record; the message names the file, the line
    and the repair (`paretotune repair`) that keeps every intact record."""


class TrialNotFoundError(ParetotuneError, LookupError):
    """No trial of that number in the study, or a record that names no study."""


class NoModelError(ParetotuneError, LookupError):
    """The trial kept no model in MLflow (a custom objective, an untracked study)."""


class ModelFileError(ParetotuneError, ValueError):
    """A model file paretotune would load is not one of its own (tampered, truncated, or
    a pickle from an older version): refused with one line, nothing in it is run."""


class UnknownMetricError(ParetotuneError, LookupError):
    """A query names a metric the study's trials do not have; the message lists the real ones."""


class NoTrialMatchesError(ParetotuneError, LookupError):
    """No complete trial satisfies a query; the message says how close the trials came."""


class ClusterError(ParetotuneError, RuntimeError):
    """The cluster could not be reached or refused the job; the message says which."""


class NotRunningError(ParetotuneError, RuntimeError):
    """The study (or job) to stop is not running; the message names it."""


class JobNotFoundError(ParetotuneError, LookupError):
    """No Ray job of that id (nor any job of a study of that name) at the address."""


class LeaseLostError(ParetotuneError, RuntimeError):
    """The driver's lease on its study (a Redis storage's) ran out, and another driver may
    have taken the study: this one stopped before writing anything more to it."""


class StopTimeoutError(ParetotuneError, RuntimeError):
    """The driver did not let go of its study in time (exit 1: it may still be closing)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``paretotune stop``, a Ray job stopped, a pod evicted): the study stops
    as on Ctrl-C (running trials closed as interrupted, the records closed in order);
    the command exits 143. ``received`` stays True once the signal came: a blocking Ray
    call turns the raised error into a plain ``KeyboardInterrupt``."""

    received = False
