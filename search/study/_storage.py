"""Opening the Optuna storage from a URL; the driver is its only writer."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalStorage
from paretotune.errors import SpecError, StudyNotFoundError
from paretotune.study._indexed_journal import IndexedJournalStorage
from paretotune.study._journal import repair_torn_tail
from paretotune.study._journal_records import CheckedJournalFileBackend

if TYPE_CHECKING:
    from paretotune.study._lock_servers import Fence

DEFAULT_STORAGE = "paretotune.journal"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_RDB_SCHEMES = ("sqlite:", "postgresql", "mysql")


def resolve_storage_url(url: str | None) -> str:
    """The storage URL to use: the argument, ``$PARETOTUNE_STORAGE``, or the journal file."""
    return url or os.environ.get("PARETOTUNE_STORAGE") or DEFAULT_STORAGE


def resolve_tracking_uri(uri: str | None) -> str:
    """The MLflow URI: the argument, ``$MLFLOW_TRACKING_URI``, or ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def open_storage(
    url: str | None = None, *, create: bool = True, fence: Fence | None = None
) -> BaseStorage:
    """Open an Optuna storage.

    ``url`` forms: a file path or ``journal:///abs/path`` (an Optuna JournalFile, the
    default, safe across driver restarts), ``sqlite:///…``, ``postgresql://…``,
    ``mysql://…`` (SQLAlchemy URLs), or ``redis://…`` (a journal in Redis).

    With ``create=False`` (every reader) nothing is created or repaired: no journal or
    SQLite file, no Optuna tables in a database; a journal is read up to a corrupt record
    with a warning, where a driver (``create=True``) is refused with `CorruptJournalError`.

    ``fence``: the driver's Redis lease (`driver_lock` yields it); every write to a Redis
    storage then first checks that the lease is still this driver's (`LeaseLostError`).

    Raises:
        StudyNotFoundError: ``create=False`` and the storage holds no Optuna store yet
            (see `storage_exists`).
    """
    url = resolve_storage_url(url)
    if not create and not storage_exists(url):
        raise missing_storage(url)
    if url.startswith(_RDB_SCHEMES):
        url = with_installed_driver(url)
        return RDBStorage(url, engine_kwargs=_engine_kwargs(url), skip_table_creation=not create)
    if url.startswith("redis://"):
        from optuna.storages.journal import JournalRedisBackend

        _require("redis", "redis", url)
        with warnings.catch_warnings():  # "JournalRedisBackend is experimental": not news
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if fence is not None:
                from paretotune.study._fenced_redis import FencedRedisBackend

                return JournalStorage(FencedRedisBackend(url, fence))
            return JournalStorage(JournalRedisBackend(url))
    path = journal_path(url)
    assert path is not None
    if create:  # a reader writes nothing: a torn tail does not stop a read (read-only media)
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(path)
    return IndexedJournalStorage(CheckedJournalFileBackend(str(path), strict=create))


def with_installed_driver(url: str) -> str:
    """A SQLAlchemy URL whose bare scheme names a driver that is installed: ``postgresql://``
    means psycopg 3 to SQLAlchemy, so with only psycopg2 (the ``postgres`` extra) it
    becomes ``postgresql+psycopg2://``.

    Raises:
        SpecError: no driver for the URL's database is installed; the line says which
            extra installs one.
    """
    if url.startswith("postgresql://"):
        if _installed("psycopg"):
            return url
        _require("psycopg2", "postgres", url)
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    if url.startswith("mysql://"):
        if _installed("MySQLdb"):
            return url
        _require("pymysql", "mysql", url)
        return "mysql+pymysql://" + url.removeprefix("mysql://")
    return url


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _require(module: str, extra: str, url: str) -> None:
    if not _installed(module):
        scheme = url.split("://", 1)[0]
        raise SpecError(
            [
                f"storage: {scheme}:// needs the {module} driver, which is not installed: "
                f"pip install 'paretotune[{extra}]'"
            ]
        )


def storage_exists(url: str | None) -> bool:
    """Whether the storage holds an Optuna store, asked without creating one: its journal
    or SQLite file exists (and the SQLite file has Optuna's tables), or its database has
    Optuna's tables. Redis and in-memory SQLite always count as existing.

    A database server that cannot be reached raises SQLAlchemy's ``OperationalError``.
    """
    url = resolve_storage_url(url)
    path = stored_file(url)
    if path is not None and not path.exists():
        return False
    if not url.startswith(_RDB_SCHEMES) or (url.startswith("sqlite:") and path is None):
        return True
    import sqlalchemy

    url = with_installed_driver(url)
    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
    try:
        return sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()


def stored_file(url: str | None) -> Path | None:
    """The file a storage URL keeps its studies in: the journal file, or the SQLite
    database (None for a server or an in-memory database)."""
    url = resolve_storage_url(url)
    return journal_path(url) or sqlite_file(url)


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///…`` URL (None for another URL or in memory)."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or "mode=memory" in url:
        return None
    return Path(database.removeprefix("file:").split("?", 1)[0])


def missing_storage(url: str | None) -> StudyNotFoundError:
    """The error for a storage that holds no Optuna store (`storage_exists` is false)."""
    url = resolve_storage_url(url)
    path = stored_file(url)
    if path is not None and not path.exists():
        where = f"{path.resolve()} (--storage {url} does not exist)"
    else:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        where = f"{shown} (it holds no Optuna tables)"
    return StudyNotFoundError(
        f"no study storage at {where}: run a study first, or pass --storage, or set "
        "$PARETOTUNE_STORAGE"
    )


def journal_path(url: str | None) -> Path | None:
    """The journal file a storage URL names (None for a database or Redis)."""
    url = resolve_storage_url(url)
    if url.startswith((*_RDB_SCHEMES, "redis://")):
        return None
    return Path(url.removeprefix("journal://"))


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite:"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def load_existing_study(storage: BaseStorage, name: str, where: str) -> optuna.Study:
    """The study called ``name`` in ``storage`` (the URL ``where``, for the message).

    Raises:
        StudyNotFoundError: the storage holds no such study (the message lists those it
            holds).
    """
    names = sorted(optuna.get_all_study_names(storage))
    if name not in names:
        known = ", ".join(names) or "none"
        raise StudyNotFoundError(f"study {name!r} not found in {where} (studies there: {known})")
    return optuna.load_study(study_name=name, storage=storage)


def find_study(storage: BaseStorage, name: str) -> optuna.study.StudySummary | None:
    """The summary of the study called ``name`` in ``storage``, or None."""
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == name:
            return summary
    return None
