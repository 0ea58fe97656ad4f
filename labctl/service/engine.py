"""The station worker behind ``labctl serve``: one thread owns the station (connects
once, queries only; runs the queue's items one after the other on the existing
runner and protocol engine; polls the readings while idle), so instruments are
never talked to from two threads.  Pause/resume/abort go to the run's RunControl,
exactly as Ctrl-C does in the CLI; the guard, the limits and the safe shutdown are
the runner's own.  After every run (and every ``sync_period`` seconds) finished runs
are pushed to the shared archive, if one is configured; an archive that is down
only delays that push."""
from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path

from labctl.errors import ConfigError, LabctlError

log = logging.getLogger("labctl.service")
ROW_KEEP = 200_000          # rows of the running step kept for late viewers
READING_COLUMNS = {"current": ("Current read (A)", "Current (A)"), "temperature": ("Temperature (K)",),
                   "field": ("Field (T)",), "position": ("Position (mm)",), "radius": ("Radius (m)",)}


def clean(value):
    """JSON-safe: NaN and infinities become None (browsers reject them), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    try:
        return clean(float(value))
    except (TypeError, ValueError):
        return str(value)


class StationService:
    def __init__(self, station_file: str | None, data_home: Path, archive_url: str | None = None,
                 sync_period: float = 5.0, pause_timeout: float = 300.0, poll_period: float = 1.0,
                 service_url: str | None = None):
        from labctl.station import Station
        from labctl.stream import LiveStream

        self.station_file = station_file
        self.station = Station.from_file(station_file)
        self.name = self.station.config.station.name
        self.data_home = Path(data_home)
        self.archive_url = archive_url
        self.sync_period = sync_period
        self.pause_timeout = pause_timeout
        self.poll_period = poll_period
        self.service_url = service_url
        self.stream = LiveStream()
        self.stream.subscribe(self._on_stream)
        self.listeners: list = []           # callables(message dict) of WebSocket clients
        self._ids = itertools.count(1)
        self.queue: list[dict] = []
        self.history: collections.deque = collections.deque(maxlen=50)  # items that ran
        self._shared = threading.Lock()  # alarms and history: appended by the worker, read by HTTP threads
        self.cv = threading.Condition()
        self.control = None
        self.current: dict | None = None
        self.rows: list = []
        self.columns: list[str] = []
        self.readings: dict = {}
        self.readings_time = None
        self.alarms: collections.deque = collections.deque(maxlen=100)
        self.lost: set[str] = set()  # readings that failed while idle (alarmed once)
        self.stopping = False
        self.stop_reason = ""
        self.archive_state = {"configured": bool(archive_url), "ok": None, "last": None, "error": None}
        self._sync_now = threading.Event()
        self._worker = threading.Thread(target=self._work, name="labctl-station", daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name="labctl-archive", daemon=True)
        self.started = time.time()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "StationService":
        self.data_home.mkdir(parents=True, exist_ok=True)
        self.station.connect(tolerant=True)  # queries only; one owner per station (OS lock)
        for role, err in self.station.errors.items():
            self.alarm("instrument lost", f"{role}: {err}")
        self._worker.start()
        if self.archive_url:
            self._syncer.start()
        return self

    def shutdown(self, reason: str, timeout: float = 600.0) -> dict | None:
        """Abort a running run (ramp-down, recorded as aborted with ``reason``), leave the
        queue unrun, stop the worker, bring every instrument to its safe state, close."""
        with self.cv:
            self.stopping = True
            self.stop_reason = reason
            control = self.control
            self.cv.notify_all()
        if control is not None and not control.aborted:
            control.abort_reason = reason
            control.abort()
        self._worker.join(timeout)
        final = self.history[-1]["final"] if self.history and self.history[-1].get("final") else None
        try:
            self.station.safe_shutdown(f"service stopped ({reason})")
        except LabctlError as e:
            log.error("safe shutdown at service stop: %s", e)
        finally:
            self.station.close()
        if self.archive_url:
            self._sync_now.set()
            self._syncer.join(30)
        return final

    # ---------------------------------------------------------------- messages
    def broadcast(self, message: dict) -> None:
        message = clean({**message, "t": time.time()})
        for fn in list(self.listeners):
            try:
                fn(message)
            except Exception:
                pass

    def alarm(self, kind: str, text: str) -> None:
        entry = {"time": time.time(), "kind": kind, "text": text}
        with self._shared:
            self.alarms.append(entry)
        log.warning("alarm: %s: %s", kind, text)
        self.broadcast({"type": "alarm", **entry})

    def _on_stream(self, topic: str, payload) -> None:
        cur = self.current
        if topic == "row":
            row = payload.get("row") or {}
            if cur is not None:
                cur["rows"] = cur.get("rows", 0) + 1
                cur["step_rows"] = cur.get("step_rows", 0) + 1
            if not self.columns:
                self.columns = list(row)
            if len(self.rows) < ROW_KEEP:
                self.rows.append(row)
            self._readings_from_row(row)
            self.broadcast({"type": "row", "step": payload.get("step"), "index": len(self.rows) - 1, "row": row})
        elif topic == "progress":
            if cur is not None:
                cur["percent"] = payload.get("percent")
                p = payload.get("percent") or 0.0
                elapsed = time.time() - cur.get("step_started", time.time())
                cur["eta_s"] = elapsed * (100.0 - p) / p if p > 0.5 else None
            self.broadcast({"type": "progress", **payload, "eta_s": cur.get("eta_s") if cur else None})
        elif topic == "step":
            status = payload.get("status")
            if cur is not None:
                if status == "running":
                    cur.update(step=payload.get("step"), kind=payload.get("kind"), percent=0.0, eta_s=None,
                               step_rows=0, step_started=time.time())
                    cur["run_id"] = Path(payload.get("path", "")).parent.name or cur.get("run_id")
                    self.rows, self.columns = [], []
                else:
                    cur.setdefault("steps_done", []).append({"step": payload.get("step"), "status": status,
                                                             "rows": payload.get("rows")})
            if status == "failed":
                reason = payload.get("reason") or ""
                self.alarm("DANGER" if "DANGER" in reason else "run failed", f"step {payload.get('step')}: {reason}")
            self.broadcast({"type": "step", **{k: v for k, v in payload.items() if k != "events"}})
        elif topic == "event":
            kind = str(payload.get("event") or "event")
            text = payload.get("message") or payload.get("reason") or str(payload)
            self.alarm(kind, f"step {payload.get('step')}: {text}")

    def _readings_from_row(self, row: dict) -> None:
        readings = dict(self.readings)  # readers see whole snapshots: the dict is replaced, never changed
        for key, names in READING_COLUMNS.items():
            for n in names:
                v = row.get(n)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    readings[key] = float(v)
                    break
        self.readings = readings
        self.readings_time = time.time()

    # ---------------------------------------------------------------- queue
    def build_plan(self, what: str, sets: list[str], protocol_toml: str | None):
        from labctl.protocol import STEPS, Plan, load_protocol_file, parse_sets

        if what != "protocol" and what not in STEPS:
            raise ConfigError(f"what={what!r}: choose protocol or one of {', '.join(STEPS)}")
        steps = list(STEPS) if what == "protocol" else [what]
        overrides, options = {}, {}
        if protocol_toml:
            if len(protocol_toml) > 1_000_000:
                raise ConfigError("protocol: more than 1 MB")
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False, encoding="utf-8") as f:
                f.write(protocol_toml)
            try:
                overrides, options = load_protocol_file(f.name, steps)
            except ConfigError as e:
                raise ConfigError(str(e).replace(f.name, "protocol")) from None
            finally:
                os.unlink(f.name)
        more, more_opts = parse_sets(list(sets or []), steps)
        for step, values in more.items():
            overrides.setdefault(step, {}).update(values)
        options.update(more_opts)
        from labctl.protocol import build_procedure

        for step, values in overrides.items():  # each value against its parameter's type and range, now
            build_procedure(step, values, step)
        if what != "protocol":
            options["scan"] = True
        return Plan(steps=steps, overrides=overrides, options=options)

    def submit(self, what: str, sets: list[str], protocol_toml: str | None, operator: str,
               notes: list[str] | None = None) -> dict:
        plan = self.build_plan(what, sets, protocol_toml)  # ConfigError: refused, nothing queued
        item = {"id": next(self._ids), "what": what, "sets": list(sets or []), "operator": operator,
                "notes": list(notes or []), "submitted": time.time(), "status": "queued",
                "has_protocol": bool(protocol_toml), "_plan": plan}
        with self.cv:
            if self.stopping:
                raise LabctlError(f"the service is stopping ({self.stop_reason}); nothing new is queued")
            self.queue.append(item)
            self.cv.notify_all()
        self.broadcast({"type": "queue", "queue": self.queue_view()})
        return self._public(item)

    def cancel(self, item_id: int) -> dict:
        with self.cv:
            for item in self.queue:
                if item["id"] == item_id:
                    self.queue.remove(item)
                    item["status"] = "cancelled"
                    break
            else:
                raise KeyError(item_id)
        self.broadcast({"type": "queue", "queue": self.queue_view()})
        return self._public(item)

    def move(self, item_id: int, index: int) -> list[dict]:
        with self.cv:
            item = next((i for i in self.queue if i["id"] == item_id), None)
            if item is None:
                raise KeyError(item_id)
            self.queue.remove(item)
            self.queue.insert(max(0, min(index, len(self.queue))), item)
        view = self.queue_view()
        self.broadcast({"type": "queue", "queue": view})
        return view

    @staticmethod
    def _public(item: dict) -> dict:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def queue_view(self) -> list[dict]:
        with self.cv:
            return [self._public(i) for i in self.queue]

    # ---------------------------------------------------------------- control
    def pause(self) -> str:
        c = self.control
        if c is None:
            return "nothing is running"
        c.pause()
        cur = self.current
        if cur is not None:
            cur["paused_since"] = time.time()
        return "pausing at the next safe point with the current ramped to zero"

    def resume(self) -> str:
        c = self.control
        if c is None:
            return "nothing is running"
        if not c.pause_requested:
            return "the run is not paused"
        c.resume()
        cur = self.current
        if cur is not None:
            cur.pop("paused_since", None)
        return "resuming"

    def abort(self, reason: str) -> str:
        c = self.control
        if c is None:
            return "nothing is running"
        if c.aborted:
            return "already aborting: the current is being ramped down"
        c.abort_reason = reason
        c.abort()
        return "aborting: ramping the current down and stopping"

    def state(self) -> str:
        c = self.control
        if c is None:
            if self.stopping:
                return "stopped" if not self._worker.is_alive() else "stopping"
            return "idle"
        if c.aborted:
            return "aborting"
        if c.paused.is_set():
            return "paused"
        if c.pause_requested:
            return "pausing"
        return "running"

    def status(self) -> dict:
        cur = self.current
        with self._shared:
            alarms, history = list(self.alarms), list(self.history)
        run = None
        if cur is not None:
            run = {k: cur.get(k) for k in ("item", "run_id", "what", "step", "kind", "percent", "eta_s", "rows",
                                           "step_rows", "started", "operator", "steps_done", "paused_since")}
        return clean({
            "station": self.name, "sim": self.station.is_sim, "state": self.state(), "run": run,
            "readings": self.readings, "readings_time": self.readings_time,
            "errors": {r: str(e) for r, e in dict(self.station.errors).items()},
            "alarms": alarms[-20:], "queue": self.queue_view(),
            "history": [self._public({k: v for k, v in h.items() if k != "final"}) for h in history[-10:]],
            "archive": dict(self.archive_state), "data_home": str(self.data_home), "time": time.time(),
            "url": self.service_url,
        })

    # ---------------------------------------------------------------- worker
    def _work(self) -> None:
        next_poll = 0.0
        while True:
            with self.cv:
                while not self.queue and not self.stopping:
                    wait = next_poll - time.monotonic()
                    if wait <= 0:
                        break
                    self.cv.wait(min(wait, 0.5))
                if self.stopping:
                    return
                item = self.queue.pop(0) if self.queue else None
            if item is None:
                self._poll()
                next_poll = time.monotonic() + self.poll_period
                continue
            self._run_item(item)
            self._sync_now.set()

    def _poll(self) -> None:
        """Readings while idle: queries only, in the worker thread (never during a run)."""
        st = self.station
        probes = {"current": lambda: st.current_source.current, "temperature": lambda: st.temperature.temperature,
                  "field": lambda: st.gaussmeter.read_field(), "position": lambda: st.stage.position}
        readings = dict(self.readings)
        for key, fn in probes.items():
            try:
                readings[key] = float(fn())
                if key in self.lost:
                    self.lost.discard(key)
                    self.broadcast({"type": "log", "text": f"{key}: answering again"})
            except KeyError:
                continue
            except Exception as e:  # an instrument lost while idle: one alarm, never fatal
                readings.pop(key, None)
                if key not in self.lost:
                    self.lost.add(key)
                    self.alarm("instrument lost", f"{key}: {e}")
        self.readings = readings
        self.readings_time = time.time()
        self.broadcast({"type": "readings", "readings": readings, "state": self.state()})

    def _reconnect_missing(self) -> None:
        from labctl.config import ROLES

        for role in ROLES:
            if role in self.station.roles and role not in self.station.errors:
                continue
            try:
                self.station.connect_role(role)
                self.station.errors.pop(role, None)
            except LabctlError as e:
                self.station.errors[role] = e

    def _run_item(self, item: dict) -> None:
        from labctl.catalog import Catalog
        from labctl.protocol import execute, record_shutdown_failure
        from labctl.provenance import collect
        from labctl.runner import RunControl, Runner

        control = RunControl()
        control.unattended = False  # an operator can resume from the page; the pause timeout below ends it
        item["status"] = "running"
        self.current = {"item": item["id"], "what": item["what"], "operator": item["operator"],
                        "started": time.time(), "rows": 0, "percent": 0.0, "steps_done": []}
        self.rows, self.columns = [], []
        self.control = control
        self.broadcast({"type": "queue", "queue": self.queue_view()})
        watcher = threading.Thread(target=self._watch_pause, args=(control,), daemon=True)
        watcher.start()
        final = None
        catalog = Catalog(self.data_home)
        runner = Runner(self.station, catalog, self.stream, control)
        provenance = collect(self.station.config, operator=item["operator"], notes=item["notes"],
                             command=["labctl serve", f"queue item {item['id']}", item["what"], *item["sets"]],
                             data_home=str(self.data_home))
        try:
            self._reconnect_missing()
            missing = [r for r in self.station.errors]
            if missing:
                raise LabctlError(f"instruments not answering: {', '.join(missing)} "
                                  f"({'; '.join(str(e) for e in self.station.errors.values())})")
            self.station.prepare(force=True)  # run-start configuration, as at a fresh session
            final = execute(self.station, item["_plan"], self.data_home, runner, provenance=provenance,
                            say=lambda msg: self.broadcast({"type": "log", "text": msg}))
        except LabctlError as e:
            if final is None:
                item["status"], item["reason"] = "failed", str(e)
                self.alarm("run failed", f"queue item {item['id']} ({item['what']}): {e}")
        except Exception as e:  # a bug: recorded, one line, the service goes on
            log.error("queue item %s failed: %s: %s", item["id"], type(e).__name__, e)
            log.debug("traceback", exc_info=True)
            item["status"], item["reason"] = "failed", f"{type(e).__name__}: {e}"
            self.alarm("run failed", f"queue item {item['id']}: {item['reason']}")
        finally:
            try:
                self.station.safe_shutdown("end of run")
            except LabctlError as e:  # the final shutdown failed: that outranks the run's status
                self.alarm("DANGER", str(e))
                if final is not None:
                    record_shutdown_failure(final, catalog, e)
            if final is not None:
                item.update(status=final["status"], reason=final.get("reason", ""), run_id=final["id"])
                if final["status"] == "failed":
                    self.alarm("run failed", f"run {final['id']}: {final.get('reason', '')}")
            item["ended"] = time.time()
            item["final"] = final
            with self._shared:
                self.history.append(item)
            self.control = None
            self.current = None
            if any(isinstance(e, LabctlError) and "DANGER" in str(e) for e in self.station.errors.values()):
                pass
            self.broadcast({"type": "finished", "item": self._public({k: v for k, v in item.items() if k != "final"}),
                            "status": self.status()})

    def _watch_pause(self, control) -> None:
        """A pause nobody resumes within ``pause_timeout`` becomes an abort (as in the CLI)."""
        since = None
        while self.control is control:
            if control.pause_requested and not control.aborted:
                since = since or time.monotonic()
                if time.monotonic() - since > self.pause_timeout:
                    self.abort(f"paused for {self.pause_timeout:g} s without a resume")
            else:
                since = None
            time.sleep(0.1)

    # ---------------------------------------------------------------- archive
    def _sync_loop(self) -> None:
        from labctl.archive import redact
        from labctl.archive.sync import publish_station, sync

        self.archive_state["url"] = redact(self.archive_url)
        while True:
            self._sync_now.wait(self.sync_period)
            self._sync_now.clear()
            report = sync(self.data_home, self.archive_url, self.name)
            self.archive_state.update(ok=report.error is None, last=report.line(), error=report.error,
                                      time=time.time())
            if report.error is None:
                publish_station(self.archive_url, self.name, self.service_url, self.status())
            if self.stopping and not self._worker.is_alive():
                return
