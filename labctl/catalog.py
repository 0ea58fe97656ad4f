"""The run catalog: one SQLite file indexing every run and step.

Every write is a short transaction on a fresh connection, so an interrupted
process never leaves the database locked.  A run left 'running' by a process
that no longer exists is shown as 'interrupted' the next time the catalog is read.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

STATUSES = ("running", "completed", "aborted", "failed", "interrupted")
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    parent TEXT,
    kind TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    sim INTEGER NOT NULL,
    parameters TEXT,
    path TEXT,
    checksum TEXT,
    pid INTEGER,
    host TEXT
);
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent);
"""
# columns added after the first release: older catalogs get them on open
EXTRA_COLUMNS = {"sample": "TEXT", "station": "TEXT", "operator": "TEXT", "notes": "TEXT", "provenance": "TEXT"}


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Catalog:
    FILENAME = "catalog.sqlite"

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / self.FILENAME
        with closing(self._connect()) as conn, conn:
            conn.executescript(SCHEMA)
            have = {r["name"] for r in conn.execute("PRAGMA table_info(runs)")}
            for name, kind in EXTRA_COLUMNS.items():
                if name not in have:
                    try:
                        conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError:  # another process added it meanwhile
                        pass

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0)
        conn.row_factory = sqlite3.Row
        return conn

    def _write(self, sql: str, args: tuple) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(sql, args)

    def start(self, run_id: str, kind: str, sim: bool, parameters: dict, path: str, parent: str | None = None,
              sample: str | None = None, station: str | None = None, operator: str | None = None,
              notes: list[str] | str | None = None, provenance: dict | None = None) -> None:
        if isinstance(notes, (list, tuple)):
            notes = "\n".join(notes)
        self._write("INSERT OR REPLACE INTO runs (id, parent, kind, started, status, sim, parameters, path, pid, host,"
                    " sample, station, operator, notes, provenance)"
                    " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, parent, kind, now_iso(), int(sim), json.dumps(parameters, default=str), str(path),
                     os.getpid(), socket.gethostname(), sample, station, operator, notes or None,
                     json.dumps(provenance, default=str) if provenance is not None else None))

    def reopen(self, run_id: str) -> None:
        """Mark an interrupted run as running again (labctl resume)."""
        self._write("UPDATE runs SET status='running', ended=NULL, reason=NULL, pid=?, host=? WHERE id=?",
                    (os.getpid(), socket.gethostname(), run_id))

    def set_notes(self, run_id: str, text: str | None) -> None:
        """Replace a run's free-text notes."""
        self._write("UPDATE runs SET notes=? WHERE id=?", (text or None, run_id))

    def forget(self, run_id: str) -> None:
        """Remove a run and its steps from the catalog (its folder is the caller's business)."""
        self._write("DELETE FROM runs WHERE id=? OR parent=?", (run_id, run_id))

    def finish(self, run_id: str, status: str, reason: str = "", checksum: str | None = None) -> None:
        """Final status, reason and end time (never 'running': a run that ends is recorded)."""
        if status not in STATUSES or status == "running":
            reason, status = f"{reason} (bad final status {status!r})".strip(), "failed"
        self._write("UPDATE runs SET status=?, reason=?, ended=?, checksum=COALESCE(?, checksum) WHERE id=?",
                    (status, reason, now_iso(), checksum, run_id))

    def refresh_interrupted(self) -> int:
        """Runs of this host still 'running' whose process is gone become 'interrupted'."""
        host = socket.gethostname()
        with closing(self._connect()) as conn, conn:
            rows = conn.execute("SELECT id, pid, host FROM runs WHERE status='running'").fetchall()
            dead = [r["id"] for r in rows if r["host"] == host and r["pid"] and not _alive(r["pid"])]
            for run_id in dead:
                conn.execute("UPDATE runs SET status='interrupted', reason=? WHERE id=?",
                             ("the process ended without closing the run (crash, kill or power loss)", run_id))
        return len(dead)

    def list(self, kind: str | None = None, status: str | None = None, since: str | None = None,
             parent: str | None | bool = False) -> list[dict]:
        self.refresh_interrupted()
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if kind:
            sql += " AND kind=?"
            args.append(kind)
        if status:
            sql += " AND status=?"
            args.append(status)
        if since:
            sql += " AND started>=?"
            args.append(since)
        if parent is None:
            sql += " AND parent IS NULL"
        elif parent is not False:
            sql += " AND parent=?"
            args.append(parent)
        sql += " ORDER BY started, id"
        with closing(self._connect()) as conn:
            return [dict(r) for r in conn.execute(sql, args).fetchall()]

    def get(self, run_id: str) -> dict | None:
        self.refresh_interrupted()
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return dict(row) if row else None
