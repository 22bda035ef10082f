"""Where a study keeps the trial records MLflow did not take (an outage, an artifact
store refusing writes) until a resume or ``paretotune sync`` records them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from paretotune.study._storage import journal_path, resolve_storage_url


def unlogged_dir(storage_url: str, study_name: str) -> Path:
    """Beside a file storage (``<journal>.<study>.unlogged``, ``<db>.<study>.unlogged``),
    so the study's files stay together; for a server storage, in the user's cache, one
    folder per storage and study."""
    url = resolve_storage_url(storage_url)
    safe = study_name.replace("/", "_")
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        return database.with_name(f"{database.name}.{safe}.unlogged")
    journal = journal_path(url)
    if journal is not None:
        return journal.with_name(f"{journal.name}.{safe}.unlogged")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "paretotune" / "unlogged" / digest / safe
