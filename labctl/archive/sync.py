"""Local-first sync: copy finished runs and steps from a station's data home (SQLite
catalog + run folders) into the shared archive.

Idempotent by (station, run id): a run whose archived status, end time and checksum
already match is skipped; otherwise its catalog row is upserted and its rows and
files are replaced, all in one transaction.  A run still recording is never synced
(it is, once it has ended), so the archive never holds half a step, and a sync that
fails half-way (database down) leaves the archive as it was before that run.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from labctl.archive import models
from labctl.archive.db import ArchiveError, describe, forget, ready

log = logging.getLogger("labctl.archive")
RUN_FILES = ("parameters.json", "station.json", "run.log")
ROW_BATCH = 5000


@dataclass
class SyncReport:
    station: str
    pushed: list[str] = field(default_factory=list)     # run/step ids written this time
    skipped: int = 0                                      # already in the archive, unchanged
    running: int = 0                                      # still recording: synced once they end
    rows: int = 0                                         # data rows written
    error: str | None = None

    def line(self) -> str:
        text = (f"station {self.station!r}: {len(self.pushed)} run(s)/step(s) pushed ({self.rows} rows), "
                f"{self.skipped} already archived, {self.running} still recording")
        return text + (f"; stopped: {self.error}" if self.error else "")


def read_rows(path: Path) -> tuple[list[str], list[list]]:
    """Column names and data rows of a step's CSV (comments and '# EVENT' lines skipped,
    a torn last line ignored).  Numbers become floats; non-finite numbers become None."""
    columns: list[str] = []
    out: list[list] = []
    with open(path, encoding="utf-8", newline="") as f:
        lines = [ln for ln in f if ln.endswith("\n") and ln.strip() and not ln.startswith("#")]
    for cells in csv.reader(lines):
        if not columns:
            columns = cells
            continue
        row = []
        for c in cells:
            try:
                v = float(c)
                row.append(v if math.isfinite(v) else None)
            except ValueError:
                row.append(c)
        out.append(row)
    return columns, out


def comment_lines(path: Path) -> str:
    """The step file's comment lines (the pymeasure header, then '# EVENT' lines), in order."""
    with open(path, encoding="utf-8", newline="") as f:
        return "".join(ln for ln in f if ln.startswith("#") and ln.endswith("\n"))


def _local_entries(data_home: Path) -> list[dict]:
    from labctl.catalog import Catalog

    if not (Path(data_home) / Catalog.FILENAME).exists():
        return []
    return Catalog(data_home).list(parent=False)


def _fingerprint(entry: dict) -> tuple:
    return (entry.get("status"), entry.get("ended"), entry.get("checksum"), entry.get("reason"))


def sync(data_home: str | Path, url: str, station: str, only: set[str] | None = None) -> SyncReport:
    """Push every finished run and step of ``data_home`` not yet (or not identically) in
    the archive.  Raises nothing for a database outage: the report's ``error`` says it."""
    report = SyncReport(station)
    entries = _local_entries(Path(data_home))
    if only is not None:
        entries = [e for e in entries if e["id"] in only or (e.get("parent") in only)]
    try:
        eng = ready(url)
        with eng.connect() as conn:
            archived = {r.id: (r.status, r.ended, r.checksum, r.reason) for r in conn.execute(
                sa.select(models.runs.c.id, models.runs.c.status, models.runs.c.ended, models.runs.c.checksum,
                          models.runs.c.reason).where(models.runs.c.station == station))}
        parents = {e["id"]: e for e in entries if not e.get("parent")}
        for entry in entries:
            if entry["status"] == "running":
                report.running += 1
                continue
            if archived.get(entry["id"]) == _fingerprint(entry):
                report.skipped += 1
                continue
            report.rows += _push(eng, station, entry, parents.get(entry.get("parent") or ""))
            report.pushed.append(entry["id"])
    except ArchiveError as e:
        report.error = str(e)
    except sa.exc.SQLAlchemyError as e:
        report.error = describe(e, url)
        forget(url)  # a database restored from a backup or re-created: migrate again next time
    except OSError as e:
        report.error = f"local store: {e}"
    if report.error:
        log.warning("archive sync: %s", report.error)
    return report


def _push(eng: sa.Engine, station: str, entry: dict, parent: dict | None) -> int:
    """One run or step, in one transaction; returns the number of data rows written."""
    path = Path(entry["path"]) if entry.get("path") else None
    columns: list[str] = []
    data: list[list] = []
    file_blobs: list[tuple[str, bytes]] = []
    if path is not None and path.is_file() and path.suffix.lower() == ".csv":
        columns, data = read_rows(path)
        comments = comment_lines(path)
        if comments:  # the pymeasure header and '# EVENT' lines: an export is the same file for analysis
            file_blobs.append(("comments", comments.encode("utf-8")))
    elif path is not None and path.is_dir():
        for name in RUN_FILES:
            f = path / name
            if f.is_file():
                file_blobs.append((name, f.read_bytes()))
    inherit = parent or {}
    record = {
        "station": station, "id": entry["id"], "parent": entry.get("parent"), "kind": entry["kind"],
        "started": entry.get("started"), "ended": entry.get("ended"), "status": entry["status"],
        "reason": entry.get("reason"), "sim": bool(entry.get("sim")),
        "sample": entry.get("sample") or inherit.get("sample"),
        "operator": entry.get("operator") or inherit.get("operator"),
        "notes": entry.get("notes"), "host": entry.get("host"), "path": entry.get("path"),
        "checksum": entry.get("checksum"), "parameters": entry.get("parameters"),
        "provenance": entry.get("provenance"), "columns": json.dumps(columns) if columns else None,
        "rows": len(data),
    }
    insert = _insert(eng)
    key = {"station": station, "run_id": entry["id"]}
    with eng.begin() as conn:
        stmt = insert(models.runs).values(**record)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["station", "id"],
            set_={k: stmt.excluded[k] for k in record if k not in ("station", "id")} | {"synced": sa.func.now()}))
        conn.execute(sa.delete(models.rows).where(models.rows.c.station == station,
                                                  models.rows.c.run_id == entry["id"]))
        if data and conn.dialect.name == "postgresql":  # COPY: the rows in one stream, same transaction
            cursor = conn.connection.driver_connection.cursor()
            with cursor.copy("COPY rows (station, run_id, seq, data) FROM STDIN") as copy:
                for i, row in enumerate(data):
                    copy.write_row((station, entry["id"], i, json.dumps(row)))
        else:
            for start in range(0, len(data), ROW_BATCH):
                conn.execute(models.rows.insert(), [{**key, "seq": start + i, "data": json.dumps(row)}
                                                    for i, row in enumerate(data[start:start + ROW_BATCH])])
        if file_blobs:
            conn.execute(sa.delete(models.files).where(models.files.c.station == station,
                                                       models.files.c.run_id == entry["id"]))
            conn.execute(models.files.insert(), [
                {**key, "name": name, "content": blob, "sha256": hashlib.sha256(blob).hexdigest()}
                for name, blob in file_blobs])
    return len(data)


def _insert(eng: sa.Engine):
    """INSERT ... ON CONFLICT for the archive's dialect (PostgreSQL; SQLite for the benchmark's local side)."""
    if eng.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def publish_station(url: str, name: str, service_url: str | None, state: dict) -> str | None:
    """The service's status in the archive's ``stations`` table (for every station's
    monitor page).  Returns an error line, or None."""
    try:
        eng = ready(url)
        insert = _insert(eng)
        with eng.begin() as conn:
            stmt = insert(models.stations).values(name=name, url=service_url, state=json.dumps(state, default=str))
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={
                "url": stmt.excluded.url, "state": stmt.excluded.state, "updated": sa.func.now()}))
    except ArchiveError as e:
        return str(e)
    except sa.exc.SQLAlchemyError as e:
        return describe(e, url)
    return None


def local_row_counts(data_home: str | Path) -> dict[str, int]:
    """Rows per finished step in the local store (for checks and tests)."""
    out = {}
    for e in _local_entries(Path(data_home)):
        p = Path(e["path"]) if e.get("path") else None
        if p is not None and p.is_file() and p.suffix.lower() == ".csv":
            out[e["id"]] = len(read_rows(p)[1])
    return out


