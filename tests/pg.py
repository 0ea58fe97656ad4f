"""A real PostgreSQL server for the archive tests (issue 16): initdb in a temporary
folder, started as the ``postgres`` user (PostgreSQL refuses to run as root) on a
free loopback port, stopped and removed at the end.  ``stop()``/``start()`` take the
database away and bring it back mid-test.  Skips with the reason when Debian's
postgresql package is not installed (``make test`` installs it)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest


def _bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self):
        self.bindir = _bindir()
        if self.bindir is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql; `make test` does it)")
        self.root = tempfile.mkdtemp(prefix="labctl-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("no 'postgres' user to run PostgreSQL as (apt-get install postgresql creates it)")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", self.data, "-U", "labctl", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, *args, check=True):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd=self.root, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-o", opts, "-w", "-t", "60",
                  "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is the database killed: connections cut, no clean shutdown."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://labctl@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=labctl dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        self.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    server = PgServer()
    for _ in range(50):  # accepting connections
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server):
    """A fresh empty database on the session's server."""
    from labctl.archive import db

    url = pg_server.new_database()
    yield url
    db.dispose(url)
