"""The shared run archive (issue 16, DESIGN.md section 11).

A lab keeps one archive on PostgreSQL, named by a URL: ``catalog = "postgresql://..."``
in the ``[station]`` table of the station file, or the ``LABCTL_CATALOG`` environment
variable (which wins), or ``--catalog URL`` on the command line (which wins over both).
Without a URL nothing changes: the embedded SQLite catalog and the CSV run folders
of the data home are the whole store.

Local-first: a station always records into its own data home during a run (the
runner, the SQLite catalog, the CSV files); ``labctl.archive.sync`` then copies
every finished run and step, its metadata, files and rows, into the archive,
idempotently by (station, run id).  A database that is down never stops a
measurement; the next sync pushes what is missing, and nothing is written twice.
"""
from __future__ import annotations

import os
import re

from labctl.errors import ConfigError

ENV = "LABCTL_CATALOG"


def resolve_url(cli: str | None = None, config=None) -> tuple[str | None, str]:
    """The archive URL and where it came from (``--catalog``, ``LABCTL_CATALOG``, the
    station file), or ``(None, reason)`` when only the local SQLite catalog is used."""
    if cli:
        return check_url(cli), "--catalog"
    env = os.environ.get(ENV, "").strip()
    if env:
        return check_url(env), ENV
    url = getattr(getattr(config, "station", None), "catalog", "") if config is not None else ""
    if url:
        return check_url(url), f"catalog of station file {config.source_path}"
    return None, "no archive configured (the local SQLite catalog only)"


def check_url(url: str) -> str:
    url = url.strip()
    if not re.match(r"^postgres(ql)?(\+psycopg)?://", url):
        raise ConfigError(f"catalog URL {redact(url)!r}: expected postgresql://USER@HOST[:PORT]/DATABASE "
                          "(the embedded default, SQLite, needs no URL)")
    return url


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` -> SQLAlchemy's psycopg 3 dialect."""
    return re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql+psycopg://", url)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
