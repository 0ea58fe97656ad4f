"""Connecting to the archive and keeping its schema current (Alembic migrations)."""
from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from labctl.archive import redact, sqlalchemy_url
from labctl.errors import LabctlError

MIGRATIONS = Path(__file__).parent / "migrations"
_engines: dict[str, sa.Engine] = {}
_upgraded: set[str] = set()
_lock = threading.Lock()


class ArchiveError(LabctlError):
    """The archive cannot be reached or refused a write (one line; the local store is unaffected)."""


def engine(url: str) -> sa.Engine:
    with _lock:
        eng = _engines.get(url)
        if eng is None:
            if url.startswith("sqlite:"):  # the same archive code on a local file (benchmarks, tests)
                eng = sa.create_engine(url)
            else:
                eng = sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True, pool_size=2, max_overflow=2,
                                       connect_args={"connect_timeout": 5})
            _engines[url] = eng
        return eng


def describe(error: Exception, url: str) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return f"archive {redact(url)}: {first}"


def _alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the archive's schema to ``revision`` (idempotent); returns the revision now in force."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        eng = engine(url)
        with eng.begin() as conn:
            # two stations upgrading at once: one waits for the other (transaction-scoped lock)
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(16016016)"))
            cfg = _alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            current = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError(describe(e, url)) from None
    _upgraded.add(url)
    return current or "base"


def ready(url: str) -> sa.Engine:
    """An engine on an archive whose schema is current (upgraded once per process)."""
    if url not in _upgraded:
        upgrade(url)
    return engine(url)


def forget(url: str) -> None:
    """Check the schema again on the next use (after an error)."""
    _upgraded.discard(url)


def dispose(url: str | None = None) -> None:
    with _lock:
        for key in [url] if url else list(_engines):
            eng = _engines.pop(key, None)
            if eng is not None:
                eng.dispose()
            _upgraded.discard(key)
