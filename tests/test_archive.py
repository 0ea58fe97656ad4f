"""The shared archive on a real PostgreSQL server (issue 16): migrations, idempotent
local-first sync by (station, run id), filtered listing, a database outage, and two
``labctl serve`` processes recording into one archive."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labserve import LABCTL, ROOT, Serve, wait_for  # noqa: E402
from pg import pg_server, pg_url  # noqa: E402,F401

pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A data home with a completed V-I and an aborted R(T) (the in-process virtual lab, full speed)."""
    home = tmp_path_factory.mktemp("home")
    for what, extra in (("vi", ["--operator", "alice", "--sample", "Nb"]), ("rt", ["--operator", "bob"])):
        subprocess.run([*LABCTL, "run", what, "--quiet", "--data-dir", str(home), *extra], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return home


def archive_runs(url: str, *args: str, verb=("archive", "runs")) -> list[dict]:
    out = subprocess.run([*LABCTL, *verb, "--catalog", url, "--json", *args], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_migrations_create_and_keep_the_schema(pg_url):
    from labctl.archive.db import upgrade

    assert upgrade(pg_url) == "0001"
    assert upgrade(pg_url) == "0001"  # idempotent
    out = subprocess.run([*LABCTL, "archive", "upgrade", "--catalog", pg_url], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0 and "revision 0001" in out.stdout


def test_sync_is_idempotent_and_complete(recorded, pg_url):
    from labctl.archive.query import list_runs, row_count, run_rows
    from labctl.archive.sync import local_row_counts, sync

    first = sync(recorded, pg_url, "cryo-A")
    assert first.error is None and first.pushed and first.rows > 0
    again = sync(recorded, pg_url, "cryo-A")
    assert again.error is None and again.pushed == [] and again.skipped == len(first.pushed)
    local = local_row_counts(recorded)
    for step_id, n in local.items():
        assert row_count(pg_url, "cryo-A", step_id) == n
        columns, data = run_rows(pg_url, "cryo-A", step_id)
        assert len(data) == n and len(columns) == len(data[0])
    runs = list_runs(pg_url)
    assert {r["kind"] for r in runs} == {"vi", "rt"}
    assert all(r["rows"] > 0 for r in runs)
    # the CLI, with filters
    assert [r["kind"] for r in archive_runs(pg_url, "--sample", "Nb")] == ["vi"]
    assert [r["operator"] for r in archive_runs(pg_url, "--operator", "bob")] == ["bob"]
    assert archive_runs(pg_url, "--station-name", "elsewhere") == []
    assert len(archive_runs(pg_url, "--since", "2000-01-01", "--until", "2999-01-01")) == 2
    assert archive_runs(pg_url, "--until", "2000-01-01") == []
    assert {r["kind"] for r in archive_runs(pg_url, "--steps")} == {"vi", "rt"} and len(archive_runs(pg_url, "--steps")) == 4
    # the same runs under another station name are other runs, never merged
    other = sync(recorded, pg_url, "cryo-B")
    assert len(other.pushed) == len(first.pushed)
    assert {r["station"] for r in list_runs(pg_url)} == {"cryo-A", "cryo-B"}


def test_an_exported_run_analyses_like_the_original(recorded, pg_url, tmp_path):
    """labctl analyze works on a run taken back out of the archive: same Ic as from the station's folder."""
    from labctl.analysis import analyze
    from labctl.archive.sync import sync

    assert sync(recorded, pg_url, "cryo-A").error is None
    vi = next(p for p in recorded.iterdir() if p.name.endswith("-vi"))
    out = subprocess.run([*LABCTL, "archive", "export", vi.name, "--station-name", "cryo-A", "--catalog", pg_url,
                          "--to", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    exported = tmp_path / vi.name
    assert {p.name for p in exported.iterdir()} >= {"01-vi.csv", "parameters.json", "station.json", "run.log"}
    original, copy = analyze(str(vi / "01-vi.csv")), analyze(str(exported / "01-vi.csv"))
    assert copy["ic"] == pytest.approx(original["ic"], rel=1e-12)
    res = subprocess.run([*LABCTL, "analyze", str(exported), "--json"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr


def test_a_database_outage_delays_the_sync_and_loses_nothing(recorded, pg_server, pg_url):
    from labctl.archive import db
    from labctl.archive.query import row_count
    from labctl.archive.sync import local_row_counts, sync

    db.upgrade(pg_url)
    pg_server.stop()
    try:
        report = sync(recorded, pg_url, "cryo-A")
        assert report.error and "archive" in report.error and "\n" not in report.error and report.pushed == []
        out = subprocess.run([*LABCTL, "archive", "sync", "--data-dir", str(recorded), "--catalog", pg_url],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 1 and "stopped" in out.stdout and "Traceback" not in out.stderr
    finally:
        pg_server.start()
    report = sync(recorded, pg_url, "cryo-A")
    assert report.error is None and report.pushed
    for step_id, n in local_row_counts(recorded).items():
        assert row_count(pg_url, "cryo-A", step_id) == n


def test_archive_filters_without_an_archive_are_bad_input(tmp_path):
    out = subprocess.run([*LABCTL, "runs", "--sample", "Nb", "--data-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "--catalog" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_bad_catalog_url_is_one_line(tmp_path):
    out = subprocess.run([*LABCTL, "archive", "runs", "--catalog", "mysql://x/y"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "postgresql://" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_two_stations_one_archive_and_the_database_killed_mid_run(tmp_path, pg_server, pg_url):
    """Two services record into one archive; the database dies during station A's run:
    the run completes locally and is in the archive, row for row, after it returns."""
    from labctl.archive.query import list_runs, row_count
    from labctl.archive.sync import local_row_counts

    args = ["--catalog", pg_url, "--sync-period", "1"]
    a = Serve(tmp_path, "cryo-A", speedup="120", args=args)
    try:
        b = Serve(tmp_path, "cryo-B", speedup="max", args=args)
    except BaseException:
        a.stop()
        raise
    try:
        b.submit("vi")
        a.submit("vi")
        a.wait_rows(2)
        pg_server.stop()  # killed: connections cut
        try:
            st = b.wait_idle()
            assert st["history"][-1]["status"] == "completed"
            st = a.wait_idle(timeout=400)
            assert st["history"][-1]["status"] == "completed"  # the measurement never noticed
            wait_for(lambda: a.status()["archive"]["ok"] is False, 60, what="the outage seen by the syncer")
        finally:
            pg_server.start()
        wait_for(lambda: a.status()["archive"]["ok"] and b.status()["archive"]["ok"], 120, what="sync after the outage")
        for s in (a, b):
            local = local_row_counts(s.data_dir)
            assert local and all(n > 0 for n in local.values())
            wait_for(lambda: all(row_count(pg_url, s.name, k) == n for k, n in local.items()), 60,
                     what=f"{s.name} rows in the archive")
        # the listing over all stations, from the CLI: labctl archive runs / labctl runs --catalog
        listed = archive_runs(pg_url, verb=("runs",))
        assert listed == archive_runs(pg_url)
        assert {r["station"] for r in listed} == {"cryo-A", "cryo-B"}
        assert [r["station"] for r in archive_runs(pg_url, "--station-name", "cryo-B", verb=("runs",))] == ["cryo-B"]
        table = subprocess.run([*LABCTL, "runs", "--catalog", pg_url], capture_output=True, text=True, timeout=120,
                               cwd=ROOT)
        assert table.returncode == 0 and "cryo-A" in table.stdout and "cryo-B" in table.stdout
        assert all(r["status"] == "completed" and r["rows"] > 0 for r in listed)
        for r in listed:
            assert r["rows"] == sum(local_row_counts(tmp_path / f"data-{r['station']}").values())
        # nothing written twice after more syncs
        n_before = len(list_runs(pg_url, steps=True))
        out = subprocess.run([*LABCTL, "archive", "sync", "--station", str(a.station), "--data-dir",
                              str(a.data_dir), "--catalog", pg_url], capture_output=True, text=True, timeout=120,
                             cwd=ROOT)
        assert out.returncode == 0 and "0 run(s)/step(s) pushed" in out.stdout
        assert len(list_runs(pg_url, steps=True)) == n_before
        # every station's service reports to the archive: the page lists both
        stations = a.request("GET", "/api/stations").json()["stations"]
        assert {s["station"] for s in stations} == {"cryo-A", "cryo-B"}
    finally:
        a.stop()
        b.stop()


def test_the_archive_url_comes_from_the_flag_the_environment_or_the_station_file(tmp_path, monkeypatch):
    from labctl.archive import redact, resolve_url
    from labctl.config import load_station
    from labserve import station_file

    path = station_file(tmp_path, "cryo-U")
    path.write_text(path.read_text().replace('[station]\n', '[station]\ncatalog = "postgresql://lab@db/labctl"\n', 1))
    config = load_station(path)
    monkeypatch.delenv("LABCTL_CATALOG", raising=False)
    assert resolve_url(None, config)[0] == "postgresql://lab@db/labctl"
    assert resolve_url(None, load_station(None)) == (None, "no archive configured (the local SQLite catalog only)")
    monkeypatch.setenv("LABCTL_CATALOG", "postgresql://env@db/x")
    assert resolve_url(None, config) == ("postgresql://env@db/x", "LABCTL_CATALOG")
    assert resolve_url("postgresql://flag@db/y", config)[1] == "--catalog"
    assert redact("postgresql://u:secret@db/x") == "postgresql://u:***@db/x"


def test_labctl_run_on_a_station_naming_an_archive_pushes_the_run(tmp_path, pg_server, pg_url):
    """The same code on one PC: a station file with catalog = URL archives each run after it ends;
    with the database down the run still completes (exit 0) and says how to push it later."""
    from labctl.archive.query import list_runs
    from labserve import station_file

    path = station_file(tmp_path, "cryo-R", speedup="max")
    path.write_text(path.read_text().replace('[station]\n', f'[station]\ncatalog = "{pg_url}"\n', 1))
    env = {k: v for k, v in __import__("os").environ.items() if k != "LABCTL_CATALOG"}
    out = subprocess.run([*LABCTL, "run", "vi", "--quiet", "--station", str(path), "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert "archived in" in out.stderr
    assert [(r["station"], r["kind"], r["status"]) for r in list_runs(pg_url)] == [("cryo-R", "vi", "completed")]
    pg_server.stop()
    try:
        out = subprocess.run([*LABCTL, "run", "rt", "--quiet", "--station", str(path), "--data-dir",
                              str(tmp_path / "d")], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL)
    finally:
        pg_server.start()
    assert out.returncode == 0 and "labctl archive sync" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([*LABCTL, "archive", "sync", "--station", str(path), "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert sorted(r["kind"] for r in list_runs(pg_url)) == ["rt", "vi"]
