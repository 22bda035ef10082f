"""A local SQLite tracking store as files: the lock while MLflow creates its tables, WAL
mode, folding the WAL back in at the end, and artifacts beside the database file."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import stat
import time
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
    and link that into place only once all MLflow's tables are there: a disk that fills
    up while they are made leaves no half-made database (which every later open,
    `paretotune sync` included, would fail on), only nothing. The tables come from a copy
    of an empty store MLflow made once for this MLflow version (`_template`): its dozens
    of migrations cost over a second of CPU per store, the copy milliseconds. Call it
    holding `schema_lock`.

    Raises:
        OSError, sqlalchemy.exc.OperationalError: the store could not be made (say, a
            full disk); the temporary file is gone.
    """
    path = sqlite_path(tracking_uri)
    if path is None or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (f"{path}-wal", f"{path}-shm"):  # a vanished database's: not for this one
        Path(stale).unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.creating-{os.getpid()}")
    try:
        template = _template()
        if template is None:
            _made_by_mlflow(temporary)
        else:
            shutil.copyfile(template, temporary)
            _default_experiment_made_here(temporary)
        # a link, not a rename: a store another program (an MLflow UI) made meanwhile
        # is kept, and this one dropped
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        for leftover in (temporary, temporary.with_name(f"{temporary.name}-journal")):
            leftover.unlink(missing_ok=True)


def template_folder() -> Path:
    """Where the empty-store templates are kept: ``$XDG_CACHE_HOME/paretotune`` (default
    ``~/.cache/paretotune``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "paretotune"


def _template() -> Path | None:
    """An empty store MLflow made (its tables and its Default experiment), one per MLflow
    version, made on first use; None where the cache cannot be used (the store is then
    made directly). Only a plain file of this user's is used."""
    import mlflow

    template = template_folder() / f"mlflow-{mlflow.__version__}-empty.db"
    try:
        if _own_plain_file(template):
            return template
        template.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        making = template.with_name(f".{template.name}.{os.getpid()}")
        try:
            _made_by_mlflow(making)
            os.replace(making, template)
        finally:
            making.unlink(missing_ok=True)
        return template if _own_plain_file(template) else None
    except Exception:  # (OSError, SQLAlchemy's): a cache that cannot serve costs nothing
        return None


def _own_plain_file(path: Path) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()


def _made_by_mlflow(path: Path) -> None:
    """MLflow's own empty store at ``path`` (the rollback journal, not WAL, so that no
    ``-wal`` file named after ``path`` holds pages when it is copied or linked)."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    store.engine.dispose()


def _default_experiment_made_here(path: Path) -> None:
    """The copied store's Default experiment as MLflow would have made it here and now:
    its artifact location resolved from this process's folder, its times now."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    location = append_to_uri_path(resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH), "0")
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(path)) as database, database:
        database.execute(
            "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
            "last_update_time = ? WHERE experiment_id = 0",
            (str(location), now, now),
        )


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
