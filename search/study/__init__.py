"""Study set-up: the Optuna storage, the sampler, opening and resuming a study, and the
names of what paretotune keeps in the storage."""

from paretotune.study._storage import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    find_study,
    open_storage,
    resolve_storage_url,
    resolve_tracking_uri,
)

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_TRACKING_URI",
    "find_study",
    "open_storage",
    "resolve_storage_url",
    "resolve_tracking_uri",
]
