"""Fixtures shared by every test package.

- ``sqlite_url``: a URL for a not-yet-existing SQLite file in the test's ``tmp_path``.
- ``pg_url``: a URL for a fresh, empty PostgreSQL namespace, dropped after the test: one
  database per test module (``cs_test_<hex>``), one schema per test pinned by the URL's
  ``search_path``. The server is ``127.0.0.1:5432``, reached as user ``postgres`` (trust
  auth) through database ``test``; set ``CARBONSHIFT_TEST_PG_ADMIN`` to another admin URL
  to use another server. Tests using it are skipped when no server answers.
- ``store``: an open :class:`~scheduler.storage.base.JobStore`, parametrised over ``memory``
  (:class:`~scheduler.storage.memory.MemoryStore`), ``sqlite-memory``, ``sqlite`` (a file)
  and ``postgres`` (marked ``postgres``): the last three a migrated
  :class:`~scheduler.storage.store.SqlStore`; closed afterwards. Use it for anything that
  must behave the same on every backend (``tests/storage/test_contract.py``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ADMIN_URL = os.environ.get(
    "CARBONSHIFT_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

_pg_unreachable: str | None = None


def _pg_admin_connect() -> Any:
    """An autocommit psycopg connection to the admin database.

    Skips the test when no server answers at the admin URL's host and port; a server that
    answers but refuses us (wrong user, no such database) is an error, not a skip.
    """
    global _pg_unreachable
    if _pg_unreachable is not None:
        pytest.skip(_pg_unreachable)
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    host, port = url.host or "127.0.0.1", url.port or 5432
    try:
        socket.create_connection((host, port), timeout=3).close()
        import psycopg
    except (OSError, ImportError) as exc:
        _pg_unreachable = f"no PostgreSQL answers at {host}:{port}: {exc}"
        pytest.skip(_pg_unreachable)
    return psycopg.connect(
        host=host, port=port, user=url.username, password=url.password,
        dbname=url.database, autocommit=True, connect_timeout=3,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:///<tmp>/carbonshift.db``; the file does not exist yet."""
    return f"sqlite:///{tmp_path / 'carbonshift.db'}"


@pytest.fixture(scope="module")
def pg_module_database() -> Iterator[str]:
    """A PostgreSQL database for one test module (psycopg conninfo), dropped after it.

    ``CREATE DATABASE`` costs about 0.3 s here, so tests share one per module and each
    gets its own schema (see ``pg_url``).
    """
    admin = _pg_admin_connect()
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


@pytest.fixture
def pg_url(pg_module_database: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL namespace as a ``postgresql+psycopg://`` URL.

    The URL names the module's database and pins ``search_path`` to a new schema created
    for this test alone (dropped afterwards), so it behaves as an empty database: tables,
    ``alembic_version`` and all land there. Other processes opening the URL see the same.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_ADMIN_URL).set(database=pg_module_database)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=base.host, port=base.port or 5432, user=base.username, password=base.password,
        dbname=pg_module_database, autocommit=True, connect_timeout=3,
    ) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(
            host=base.host, port=base.port or 5432, user=base.username,
            password=base.password, dbname=pg_module_database, autocommit=True,
        ) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


#: The backends of the ``store`` fixture: the plain-Python store, the SQL store on an
#: in-memory SQLite database (one shared connection), on an SQLite file, on PostgreSQL.
STORE_BACKENDS = ["memory", "sqlite-memory", "sqlite",
                  pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An open :class:`~scheduler.storage.base.JobStore` on each backend in turn: a
    :class:`~scheduler.storage.memory.MemoryStore`, or an :class:`SqlStore` (``store.url``
    is its URL)."""
    from scheduler.storage.base import JobStore

    opened: JobStore
    if request.param == "memory":
        from scheduler.storage.memory import MemoryStore

        opened = MemoryStore()
    else:
        from scheduler.storage.store import open_store

        if request.param == "sqlite-memory":
            url = "sqlite://"
        elif request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'carbonshift.db'}"
        else:
            url = request.getfixturevalue("pg_url")
        opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()
