"""``labctl archive sync|upgrade|runs|rows|stations`` and the archive side of
``labctl runs --catalog URL``."""
from __future__ import annotations

import csv
import json
import sys

from labctl.errors import ConfigError

KEYS = ("station", "id", "kind", "status", "reason", "sample", "operator", "started", "ended", "rows", "sim",
        "parent", "checksum", "notes", "synced")


def _url(args, config=None) -> str:
    from labctl.archive import resolve_url

    url, source = resolve_url(getattr(args, "catalog", None), config)
    if url is None:
        raise ConfigError("no archive URL: give --catalog postgresql://USER@HOST/DB, set LABCTL_CATALOG, "
                          "or catalog = \"postgresql://...\" in the station file's [station] table")
    return url


def _date(text: str | None, flag: str) -> str | None:
    from datetime import datetime

    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if len(text.strip()) == 10:
        return text.strip()
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def list_archive(args, url: str | None = None) -> int:
    """Every station's runs from the archive (``labctl runs --catalog URL``)."""
    from rich.console import Console
    from rich.table import Table

    from labctl.archive import redact
    from labctl.archive.query import list_runs

    url = url or _url(args)
    rows = list_runs(url, station=getattr(args, "station_name", None), sample=getattr(args, "sample", None),
                     kind=getattr(args, "kind", None), status=getattr(args, "status", None),
                     operator=getattr(args, "operator", None), since=_date(getattr(args, "since", None), "--since"),
                     until=_date(getattr(args, "until", None), "--until"), steps=bool(getattr(args, "steps", False)))
    if getattr(args, "json", False):
        print(json.dumps([{k: r.get(k) for k in KEYS} for r in rows], indent=1, default=str))
        return 0
    table = Table(title=f"runs in the archive {redact(url)}")
    for col in ("station", "id", "kind", "status", "sample", "operator", "started", "rows", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        colour = {"completed": "green", "running": "cyan"}.get(r["status"], "red")
        table.add_row(r["station"], r["id"], r["kind"], f"[{colour}]{r['status']}[/{colour}]", r.get("sample") or "",
                      r.get("operator") or "", r.get("started") or "", str(r.get("rows") or 0), r.get("reason") or "")
    Console(highlight=False, width=180).print(table)
    if not rows:
        print(f"labctl: no runs in the archive {redact(url)} match", file=sys.stderr)
    return 0


def _sync(args) -> int:
    from labctl import datadir
    from labctl.archive.sync import sync
    from labctl.config import load_station

    config = load_station(args.station)
    url = _url(args, config)
    home = datadir.resolve(args.data_dir, config)
    report = sync(home.path, url, config.station.name)
    print(report.line())
    return 1 if report.error else 0


def _upgrade(args) -> int:
    from labctl.archive import redact
    from labctl.archive.db import upgrade
    from labctl.config import load_station

    url = _url(args, load_station(args.station) if args.station else None)
    print(f"archive {redact(url)}: schema at revision {upgrade(url)}")
    return 0


def _rows(args) -> int:
    from labctl.archive.query import run_rows

    columns, data = run_rows(_url(args), args.station_name, args.run)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(columns)
    w.writerows(["" if v is None else v for v in row] for row in data)
    return 0


def _export(args) -> int:
    from labctl.archive.query import export_run

    path = export_run(_url(args), args.station_name, args.run, args.to)
    print(f"exported to {path} (analyse it: labctl analyze {path})")
    return 0


def _stations(args) -> int:
    from labctl.archive.query import stations

    for s in stations(_url(args)):
        state = s.get("state") or {}
        print(f"{s['name']}\t{s.get('url') or ''}\t{state.get('state', '?')}\t{s.get('updated')}")
    return 0


def add_filters(p) -> None:
    p.add_argument("--station-name", metavar="NAME", help="only this station's runs")
    p.add_argument("--sample", help="only runs of this sample")
    p.add_argument("--operator", help="only runs by this operator")
    p.add_argument("--until", help="started on or before this ISO date")


def register(sub) -> None:
    import argparse

    p = sub.add_parser("archive", help="the shared run archive on PostgreSQL (sync, schema, listing)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="The archive URL: --catalog, else $LABCTL_CATALOG, else catalog in the station file's\n"
                              "[station] table.  examples:\n"
                              "  labctl archive sync --station lab.toml\n"
                              "  labctl archive runs --catalog postgresql://lab@db/labctl --sample Nb --status completed\n"
                              "  labctl archive rows 20261129-101500-vi/vi --station-name cryostat-1 > vi.csv\n"
                              "  labctl archive export 20261129-101500-vi --station-name cryostat-1 --to /tmp/runs")
    asub = p.add_subparsers(dest="archive_verb", metavar="ACTION")
    asub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--catalog", metavar="URL", help="postgresql://USER@HOST[:PORT]/DATABASE")
    s = asub.add_parser("sync", parents=[common], help="push this station's finished runs that the archive lacks")
    s.add_argument("--station", help="station TOML (its name keys the runs; its data_dir and catalog are used)")
    s.add_argument("--data-dir", help="the local data home to push (default: as `labctl runs`)")
    s.set_defaults(func=_sync)
    u = asub.add_parser("upgrade", parents=[common], help="create or migrate the archive's schema (Alembic)")
    u.add_argument("--station", help="station TOML whose catalog URL to use")
    u.set_defaults(func=_upgrade)
    r = asub.add_parser("runs", parents=[common], help="every station's runs in the archive, with filters")
    add_filters(r)
    r.add_argument("--kind", help="filter by kind")
    r.add_argument("--status", choices=["running", "completed", "aborted", "failed", "interrupted"])
    r.add_argument("--since", help="started on or after this ISO date")
    r.add_argument("--steps", action="store_true", help="include the steps of each protocol")
    r.add_argument("--json", action="store_true", help="JSON list on stdout")
    r.set_defaults(func=list_archive)
    rw = asub.add_parser("rows", parents=[common], help="one archived run's or step's rows as CSV on stdout")
    rw.add_argument("run", help="run id, or run id/step")
    rw.add_argument("--station-name", metavar="NAME", required=True, help="the station that recorded it")
    rw.set_defaults(func=_rows)
    ex = asub.add_parser("export", parents=[common], help="write an archived run back as a run folder (for analyze/report)")
    ex.add_argument("run", help="run id, or run id/step")
    ex.add_argument("--station-name", metavar="NAME", required=True, help="the station that recorded it")
    ex.add_argument("--to", metavar="DIR", default=".", help="where to write it (default: the current folder)")
    ex.set_defaults(func=_export)
    st = asub.add_parser("stations", parents=[common], help="the stations whose services report to the archive")
    st.set_defaults(func=_stations)


def push_after_run(config, data_home) -> str | None:
    """After ``labctl run`` / ``resume`` on a station whose file (or LABCTL_CATALOG) names an
    archive: push the finished run.  Returns one line for the user, or None without an
    archive.  Never raises and never changes the run's outcome: the run is safe locally."""
    from labctl.archive import redact, resolve_url
    from labctl.errors import LabctlError

    try:
        url, _ = resolve_url(None, config)
    except LabctlError as e:
        return f"archive not used: {e}"
    if url is None:
        return None
    from labctl.archive.sync import sync  # SQLAlchemy only when an archive is named
    report = sync(data_home, url, config.station.name)
    if report.error:
        return (f"the run is recorded locally; the archive {redact(url)} was not reachable ({report.error}); "
                f"`labctl archive sync` pushes it later")
    return f"archived in {redact(url)}: {len(report.pushed)} run(s)/step(s), {report.rows} rows"
