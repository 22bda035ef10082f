"""``python -m paretotune.cli``: the same as the ``paretotune`` command."""

from paretotune.cli._main import entry

entry()
