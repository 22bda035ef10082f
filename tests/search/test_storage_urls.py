"""Every storage URL the README documents opens, or says in one line which extra to install."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from paretotune import SpecError, open_storage
from paretotune.study._storage import with_installed_driver


def test_a_bare_postgresql_url_uses_the_installed_psycopg2():
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg 3 is installed: SQLAlchemy's default driver applies")
    assert with_installed_driver("postgresql://u@127.0.0.1:5432/db") == (
        "postgresql+psycopg2://u@127.0.0.1:5432/db"
    )
    explicit = "postgresql+psycopg2://u@h/db"
    assert with_installed_driver(explicit) == explicit


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("redis://127.0.0.1:1/0", "redis", "redis"), ("mysql://u@127.0.0.1:1/db", "pymysql", "mysql")],
)
def test_a_missing_driver_is_one_line_naming_the_extra(
    url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
):
    # None in sys.modules is how Python itself marks a module that cannot be imported
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SpecError) as caught:
        open_storage(url)
    assert caught.value.problems == [
        f"storage: {url.split('://')[0]}:// needs the {module} driver, which is not installed: "
        f"pip install 'paretotune[{extra}]'"
    ]
