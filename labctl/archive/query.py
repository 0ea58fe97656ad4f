"""Reading the shared archive: every station's runs, with filters, and a run's rows."""
from __future__ import annotations

import json

import sqlalchemy as sa

from labctl.archive import models
from labctl.archive.db import ArchiveError, describe, ready

FILTERS = ("station", "sample", "kind", "status", "operator")


def list_runs(url: str, station: str | None = None, sample: str | None = None, kind: str | None = None,
              status: str | None = None, operator: str | None = None, since: str | None = None,
              until: str | None = None, steps: bool = False) -> list[dict]:
    """Runs (and with ``steps`` their steps) in start order.  A run's ``rows`` is the sum
    of its steps' rows; ``since``/``until`` compare ISO dates of the start."""
    r = models.runs
    q = sa.select(r)
    for name, value in (("station", station), ("sample", sample), ("kind", kind), ("status", status),
                        ("operator", operator)):
        if value:
            q = q.where(r.c[name] == value)
    if since:
        q = q.where(r.c.started >= since)
    if until:
        q = q.where(r.c.started < _next_day(until) if len(until) == 10 else r.c.started <= until)
    if not steps:
        q = q.where(r.c.parent.is_(None))
    q = q.order_by(r.c.started, r.c.station, r.c.id)
    try:
        eng = ready(url)
        with eng.connect() as conn:
            out = [dict(row._mapping) for row in conn.execute(q)]
            totals = {(row.station, row.parent): int(row.total) for row in conn.execute(
                sa.select(r.c.station, r.c.parent, sa.func.sum(r.c.rows).label("total"))
                .where(r.c.parent.is_not(None)).group_by(r.c.station, r.c.parent))}
    except ArchiveError:
        raise
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError(describe(e, url)) from None
    for entry in out:
        if entry.get("parent") is None and (entry["station"], entry["id"]) in totals:
            entry["rows"] = totals[(entry["station"], entry["id"])]
        entry["synced"] = entry["synced"].isoformat(timespec="seconds") if entry.get("synced") else None
    return out


def _next_day(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def run_rows(url: str, station: str, run_id: str) -> tuple[list[str], list[list]]:
    """Column names and rows of one archived step (a run id gives all its steps' rows,
    with a 'Step' column first)."""
    r, rw = models.runs, models.rows
    try:
        eng = ready(url)
        with eng.connect() as conn:
            entries = conn.execute(sa.select(r.c.id, r.c.columns).where(
                r.c.station == station, sa.or_(r.c.id == run_id, r.c.parent == run_id)).order_by(r.c.id)).all()
            if not entries:
                raise ArchiveError(f"no run {run_id!r} of station {station!r} in the archive")
            with_data = [(e.id, json.loads(e.columns)) for e in entries if e.columns]
            if len(with_data) == 1 and with_data[0][0] == run_id:
                step_id, columns = with_data[0]
                data = [json.loads(x.data) for x in conn.execute(
                    sa.select(rw.c.data).where(rw.c.station == station, rw.c.run_id == step_id).order_by(rw.c.seq))]
                return columns, data
            columns = ["Step"]
            for _, cols in with_data:
                columns += [c for c in cols if c not in columns]
            data = []
            for step_id, cols in with_data:
                for x in conn.execute(sa.select(rw.c.data).where(rw.c.station == station, rw.c.run_id == step_id)
                                      .order_by(rw.c.seq)):
                    values = dict(zip(cols, json.loads(x.data)))
                    data.append([step_id.rpartition("/")[2]] + [values.get(c) for c in columns[1:]])
            return columns, data
    except ArchiveError:
        raise
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError(describe(e, url)) from None


def row_count(url: str, station: str, run_id: str) -> int:
    rw = models.rows
    try:
        with ready(url).connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(rw).where(
                rw.c.station == station, sa.or_(rw.c.run_id == run_id, rw.c.run_id.like(run_id + "/%")))).scalar())
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError(describe(e, url)) from None


def stations(url: str) -> list[dict]:
    s = models.stations
    try:
        with ready(url).connect() as conn:
            out = []
            for row in conn.execute(sa.select(s).order_by(s.c.name)):
                d = dict(row._mapping)
                d["state"] = json.loads(d["state"]) if d.get("state") else None
                d["updated"] = d["updated"].isoformat(timespec="seconds") if d.get("updated") else None
                out.append(d)
            return out
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError(describe(e, url)) from None


def export_run(url: str, station: str, run_id: str, dest) -> "Path":
    """Write an archived run (or one step) back as a run folder under ``dest``: its
    parameters.json, station.json and run.log, and each step's CSV (pymeasure header,
    column line, rows, then its '# EVENT' lines), ready for ``labctl analyze`` or
    ``labctl report``.  Returns the folder (or the CSV for a step)."""
    import csv
    import io
    from pathlib import Path

    r, rw, f = models.runs, models.rows, models.files
    dest = Path(dest)
    try:
        with ready(url).connect() as conn:
            entries = conn.execute(sa.select(r).where(r.c.station == station, sa.or_(
                r.c.id == run_id, r.c.parent == run_id)).order_by(r.c.id)).all()
            if not entries:
                raise ArchiveError(f"no run {run_id!r} of station {station!r} in the archive")
            top = run_id.split("/")[0]
            folder = dest / top
            folder.mkdir(parents=True, exist_ok=True)
            written = folder
            for e in entries:
                blobs = {x.name: x.content for x in conn.execute(
                    sa.select(f.c.name, f.c.content).where(f.c.station == station, f.c.run_id == e.id))}
                if not e.columns:
                    for name, content in blobs.items():
                        if "/" not in name and name in ("parameters.json", "station.json", "run.log"):
                            (folder / name).write_bytes(content)
                    continue
                comments = blobs.get("comments", b"").decode("utf-8").splitlines(keepends=True)
                header = [c for c in comments if not c.startswith("# EVENT")]
                events = [c for c in comments if c.startswith("# EVENT")]
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\n")
                w.writerow(json.loads(e.columns))
                for x in conn.execute(sa.select(rw.c.data).where(rw.c.station == station, rw.c.run_id == e.id)
                                      .order_by(rw.c.seq)):
                    w.writerow(["nan" if v is None else v for v in json.loads(x.data)])
                name = Path(e.path).name if e.path else e.id.replace("/", "-") + ".csv"
                target = folder / name
                target.write_text("".join(header) + buf.getvalue() + "".join(events), encoding="utf-8")
                if e.id == run_id:
                    written = target
            return written
    except ArchiveError:
        raise
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError(describe(e, url)) from None
