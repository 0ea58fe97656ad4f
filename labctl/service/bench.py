"""The ``lab`` benchmark suite (``labctl bench lab``; issue 16): rows per second from a
station's local store into the shared archive on PostgreSQL, beside the same sync
code into a local SQLite file; and the update latency of a live run as seen by a
WebSocket client and by the monitor page in headless Chromium, beside the in-process
live stream that the single-PC GUI and CLI use.  Starts its own PostgreSQL server and
``labctl serve`` process; rows without the server or the browser say why."""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROW_COLUMNS = ["Current (A)", "Current read (A)", "Radius (m)", "Field (T)", "Field std (T)", "Temperature (K)",
               "Repeat", "Point", "Time (s)"]


def _row(what, unit, values, **extra):
    return {"what": what, "unit": unit, "median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), **extra}


def _na(what, note):
    return {"what": what, "unit": "n/a", "median": None, "min": None, "max": None, "n": 0, "note": note}


def make_home(folder: Path, rows: int, station: str = "bench") -> Path:
    """A data home with one finished single-step run of ``rows`` radial-field rows."""
    from labctl.catalog import Catalog

    folder.mkdir(parents=True, exist_ok=True)
    run_dir = folder / "20260101-000000-radial-field"
    run_dir.mkdir(exist_ok=True)
    path = run_dir / "01-radial-field.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("#Procedure: <procedures.radial.RadialField>\n#Parameters:\n#Data:\n" + ",".join(ROW_COLUMNS) + "\n")
        for i in range(rows):
            r = 0.005 + 0.005 * (i % 3) / 2
            f.write(f"{100.0 + i % 7},{100.01 + i % 7},{r},{1e-3 * r * r},{1e-6},{4.2},{i % 5},{i},{i * 0.5}\n")
    (run_dir / "parameters.json").write_text(json.dumps({"id": run_dir.name}), encoding="utf-8")
    cat = Catalog(folder)
    cat.start(run_dir.name, "radial-field", True, {}, str(run_dir), sample="Pb", station=station, operator="bench")
    cat.start(run_dir.name + "/radial-field", "radial-field", True, {}, str(path), parent=run_dir.name)
    cat.finish(run_dir.name + "/radial-field", "completed", "", None)
    cat.finish(run_dir.name, "completed", "", None)
    return folder


def bench_archive(workdir: Path, rows: int, repeats: int) -> list[dict]:
    from labctl.archive import db
    from labctl.archive.localpg import PgServer, Unavailable
    from labctl.archive.query import row_count
    from labctl.archive.sync import sync

    home = make_home(workdir / "home", rows)
    out = []
    try:
        server = PgServer()
    except Unavailable as e:
        return [_na("archive sync into PostgreSQL", f"Not measured: {e}.")]
    try:
        pg, lite = [], []
        for k in range(repeats):
            for side in ("pg", "sqlite") if k % 2 == 0 else ("sqlite", "pg"):
                url = server.new_database() if side == "pg" else f"sqlite:///{workdir}/lite-{k}.sqlite"
                db.upgrade(url)
                t0 = time.perf_counter()
                report = sync(home, url, "bench")
                dt = time.perf_counter() - t0
                if report.error or row_count(url, "bench", "20260101-000000-radial-field/radial-field") != rows:
                    raise RuntimeError(f"sync into {side} incomplete: {report.line()}")
                (pg if side == "pg" else lite).append(rows / dt)
                db.dispose(url)
        out.append(_row(f"sync of a {rows}-row step into PostgreSQL (loopback, one transaction)", "rows/s", pg))
        out.append(_row(f"same sync code into a local SQLite file", "rows/s", lite))
        out.append(_row("ratio SQLite / PostgreSQL", "×", [a / b for a, b in zip(lite, pg)]))
        out[-1]["note"] = (
            f"labctl.archive.sync.sync(): one finished radial-field step of {rows} rows × {len(ROW_COLUMNS)} columns "
            "read from its CSV in the station's data home and written with its catalog row in one transaction "
            "(rows as JSON; COPY into PostgreSQL, 5000-row batches into SQLite) into a fresh database each time: PostgreSQL "
            f"{os.path.basename(os.path.dirname(server.bindir))} started by the suite on 127.0.0.1 "
            "(fsync off, as in the tests), and the same code on a SQLite file (the local side). Alternating order. "
            "The station's own recording during a run is the pipeline suite's figure: the archive is written after "
            "each run, never in the acquisition path.")
    finally:
        server.close()
    return out


def bench_stream_local(n: int = 20000) -> list[float]:
    """In-process LiveStream delivery (publish -> subscriber), the single-PC GUI/CLI path, in ms."""
    from labctl.stream import LiveStream

    stream, lat = LiveStream(), []
    stream.subscribe(lambda topic, payload: lat.append((time.perf_counter() - payload["t"]) * 1e3))
    for i in range(n):
        stream.publish("row", {"t": time.perf_counter(), "row": {"i": i}})
    return lat


def _serve(workdir: Path, speedup: str):
    from labctl.config import STATIONS_DIR
    import re

    text = (STATIONS_DIR / "sim.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^speedup = "max".*$', f"speedup = {speedup}", text)
    station = workdir / "bench-station.toml"
    station.write_text(text, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "serve", "--station", str(station), "--port", "0",
                             "--data-dir", str(workdir / "serve-data")], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError("labctl serve did not start")
    return proc, line.split()[1]


def bench_page(workdir: Path, seconds: float) -> list[dict]:
    import httpx

    chromium, driver_path = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
    out = []
    proc, url = _serve(workdir, "30")
    profile = tempfile.mkdtemp(prefix="labctl-bench-chromium-")
    try:
        httpx.post(url + "/api/queue", json={"what": "vi", "sets": ["current_step=1"]}, timeout=30).raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (httpx.get(url + "/api/status", timeout=30).json()["run"] or {}).get("step_rows"):
            time.sleep(0.2)
        ws_lat = _ws_latency(url, seconds)
        out.append(_row("WebSocket client on loopback: row published -> received", "ms", ws_lat))
        if Path(chromium).exists() and Path(driver_path).exists():
            from selenium import webdriver
            from selenium.webdriver.chrome.options import Options
            from selenium.webdriver.chrome.service import Service

            options = Options()
            options.binary_location = chromium
            for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
                options.add_argument(flag)
            driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
            try:
                driver.get(url + "/")
                time.sleep(seconds)
                lat = [x * 1e3 for x in driver.execute_script("return window.labctlLatency") if x is not None]
            finally:
                driver.quit()
            if lat:
                out.append(_row("monitor page in headless Chromium: row published -> handled by the page", "ms", lat))
            else:
                out.append(_na("monitor page latency", "No row reached the page during the measurement."))
        else:
            out.append(_na("monitor page latency", "Not measured: Chromium/chromedriver not installed."))
        httpx.post(url + "/api/run/abort", timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    local = bench_stream_local()
    out.append(_row("in-process live stream (single-PC GUI/CLI path): publish -> subscriber", "ms", local))
    out[-1]["note"] = (
        "A live V-I run (virtual lab at 30× speed, current_step 1 A) on a `labctl serve` process on loopback; the "
        "service stamps each row message with its wall time when the runner publishes it; latency = arrival time "
        f"at the client minus that stamp, over {seconds:g} s of rows (same machine, same clock). Page: the monitor "
        "page's WebSocket handler (parse, table update, plot scheduled), before the browser paints. The in-process "
        "figure is LiveStream.publish to a subscriber in the same process.")
    return out


def _ws_latency(url: str, seconds: float) -> list[float]:
    from websockets.sync.client import connect

    lat = []
    end = time.monotonic() + seconds
    with connect(url.replace("http", "ws") + "/ws", open_timeout=30) as ws:
        while time.monotonic() < end:
            try:
                msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
            except TimeoutError:
                break
            now = time.time()
            for m in msg.get("messages", [msg]):
                if m.get("type") == "row" and isinstance(m.get("t"), float):
                    lat.append((now - m["t"]) * 1e3)
    return lat or [math.nan]


def suite_lab(ctx=None) -> list[dict]:
    quick = bool(getattr(ctx, "quick", False))
    workdir = Path(tempfile.mkdtemp(prefix="labctl-bench-lab-"))
    try:
        rows = bench_archive(workdir, 20_000 if quick else 100_000, 2 if quick else 4)
        try:
            rows += bench_page(workdir, 5.0 if quick else 15.0)
        except Exception as e:  # noqa: BLE001 - a row that says why
            rows.append(_na("page update latency", f"Not measured: {type(e).__name__}: {e}"))
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
