"""The ``paretotune`` command line: `main` runs one command, `entry` is the console script."""

from paretotune.cli._main import entry, main

__all__ = ["entry", "main"]
