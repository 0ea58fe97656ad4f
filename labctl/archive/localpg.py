"""A throw-away PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary
folder, started on a free loopback port (as the ``postgres`` user when run as root:
PostgreSQL refuses to run as root), trust authentication on loopback only.
``stop()``/``start()`` take it away and bring it back (the outage tests)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid


class Unavailable(RuntimeError):
    """PostgreSQL's server binaries (Debian package postgresql) are not installed."""


def bindir() -> str | None:
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
        self.bindir = bindir()
        if self.bindir is None:
            raise Unavailable("PostgreSQL is not installed (apt-get install postgresql; `make test` does it)")
        self.as_root = os.geteuid() == 0
        self.uid = self.gid = None
        if self.as_root:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("no 'postgres' user to run PostgreSQL as (apt-get install postgresql creates it)")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.root = tempfile.mkdtemp(prefix="labctl-pg-")
        if self.as_root:
            os.chown(self.root, self.uid, self.gid)
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-U", "labctl", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, *args, check=True):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd=self.root, timeout=120,
                              stdin=subprocess.DEVNULL)

    def start(self) -> None:
        opts = (f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-o", opts, "-w", "-t", "60",
                  "start")
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: the database killed (connections cut, no clean shutdown)."""
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
