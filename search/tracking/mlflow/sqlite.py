"""A local SQLite tracking store as files: the lock while MLflow creates its tables, WAL
mode, folding the WAL back in at the end, and artifacts beside the database file."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def schema_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a local SQLite store while MLflow opens it: two
    logging processes (a resumed study's, and one a killed driver left draining) must not
    both create its tables."""
    path = sqlite_path(tracking_uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def create_whole(tracking_uri: str) -> None:
    """Create a local SQLite store that does not exist yet in a temporary file beside it,
    and move that into place only once MLflow has made all its tables: a disk that fills
    up while MLflow runs its dozens of migrations leaves no half-made database (which
    every later open, `paretotune sync` included, would fail on), only nothing. Call it
    holding `schema_lock`.

    Raises:
        OSError, sqlalchemy.exc.OperationalError: the store could not be made (say, a
            full disk); the temporary file is gone.
    """
    path = sqlite_path(tracking_uri)
    if path is None or path.exists():
        return
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (f"{path}-wal", f"{path}-shm"):  # a vanished database's: not for this one
        Path(stale).unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.creating-{os.getpid()}")
    try:
        # the rollback journal, not WAL, while it is made: no -wal file named after the
        # temporary may hold pages when it is renamed
        store = SqlAlchemyStore(f"sqlite:///{temporary}", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
        store.engine.dispose()
        # a link, not a rename: a store another program (an MLflow UI) made meanwhile
        # is kept, and this one dropped
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        for leftover in (temporary, temporary.with_name(f"{temporary.name}-journal")):
            leftover.unlink(missing_ok=True)


def prefer_wal(tracking_uri: str) -> None:
    """Put a local SQLite store in write-ahead-log mode (it stays so): the MLflow UI can
    read while the study writes, and each commit syncs one file instead of two. Left as
    it is when the database is busy or not a local file."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=1)) as database:
            database.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass


def fold_wal(tracking_uri: str) -> None:
    """Copy a local SQLite store's write-ahead log into the database file and empty it,
    so the ``.db`` file alone holds the whole study (a copy of it misses nothing), even
    though the logging process exits without closing MLflow's connections."""
    path = sqlite_path(tracking_uri)
    if path is None or not path.exists():
        return
    try:
        # A short busy timeout: a checkpoint that waits for a reader (the MLflow UI, say)
        # holds up other writers (another study in the same store) meanwhile.
        with contextlib.closing(sqlite3.connect(path, timeout=0.1)) as database:
            busy = database.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:  # copy what no reader needs; SQLite folds in the rest later
                database.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` URI; None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///"))


# tracking URIs MLflow reads as a service's name, not as a local folder
NAMED_STORES = frozenset({"databricks", "databricks-uc", "uc"})


def local_store_path(tracking_uri: str) -> Path | None:
    """The file or folder of a local store: a ``sqlite:///`` database, a ``file:`` or
    plain-path file store; None for a server or a named service (``databricks``)."""
    database = sqlite_path(tracking_uri)
    if database is not None:
        return database
    if tracking_uri in NAMED_STORES or tracking_uri.startswith("sqlite:"):
        return None
    if "://" in tracking_uri and not tracking_uri.startswith("file:"):
        return None
    return Path(tracking_uri.removeprefix("file://").removeprefix("file:"))


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``mlartifacts/<experiment>`` beside a local SQLite database; the store's default else."""
    database = sqlite_path(tracking_uri)
    if database is None:
        return None
    return (database.resolve().parent / "mlartifacts" / experiment).as_uri()
