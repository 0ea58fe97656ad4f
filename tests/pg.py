"""Fixtures with a real PostgreSQL server for the archive and service tests (issue 16):
one server per test session (labctl.archive.localpg: initdb in a temporary folder, a
free loopback port, run as the ``postgres`` user when the tests run as root), a fresh
database per test.  Skips with the reason only when Debian's postgresql package is not
installed (``make test`` installs it)."""
from __future__ import annotations

import pytest

from labctl.archive.localpg import PgServer, Unavailable


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = PgServer()
    except Unavailable as e:
        pytest.skip(str(e))
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server):
    """A fresh empty database on the session's server."""
    from labctl.archive import db

    url = pg_server.new_database()
    yield url
    db.dispose(url)
