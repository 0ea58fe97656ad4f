"""The HTTP + WebSocket API and the monitor page (FastAPI; the schema is at
/openapi.json, browsable at /docs).  JSON only on the wire: no pickle, no code.

Access: a key in ``Authorization: Bearer KEY`` (or ``X-API-Key``; ``?key=`` on the
WebSocket) names the caller and their role: observer (read), operator (queue,
pause, resume, abort), admin (keys, station reconnection).  On a service bound to
loopback only (no ``--host``), a caller without a key is 'local' with the
``local_role`` (operator by default); with ``--host`` every request needs a key
(401 without, 403 for a role too low).  Every state-changing request, granted or
refused, is a line in the audit log."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import math
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from labctl.errors import ConfigError, LabctlError
from labctl.service.audit import AuditLog
from labctl.service.keys import ROLES, KeyStore, Principal

STATIC = Path(__file__).parent / "static"
CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class SubmitBody(BaseModel):
    what: str = Field(description="protocol, or one step: rt vi normal-control radial-field radial-scan residual")
    sets: list[str] = Field(default_factory=list, description="parameter overrides, e.g. vi.current_step=2")
    protocol: str | None = Field(default=None, description="a protocol TOML (data, never code)")
    note: list[str] = Field(default_factory=list, description="free-text notes recorded with the run")


class MoveBody(BaseModel):
    index: int = Field(ge=0, description="new position in the queue (0 = next)")


class FaultBody(BaseModel):
    role: str = Field(description="current_source, voltmeter, temperature, gaussmeter or stage")
    fault: str = Field(description="timeout, drop, garbage, overload, stall, sensor or quench")
    on: bool = True


class KeyBody(BaseModel):
    name: str
    role: str


def create_app(service, keys: KeyStore, audit: AuditLog, require_keys: bool, local_role: str = "operator") -> FastAPI:
    app = FastAPI(title="labctl station service", version="1",
                  description="One station: status and readings, the run queue, pause/resume/abort, live rows "
                              "and events, the run list, each run's files and analysis.")
    app.state.service = service

    def principal_for(key: str | None, client: str | None) -> Principal:
        if key:
            p = keys.lookup(key)
            if p is None:
                raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
            return p
        if not require_keys and is_loopback(client):
            return Principal("local", local_role, via="loopback")
        raise HTTPException(401, "an API key is required (Authorization: Bearer KEY)",
                            headers={"WWW-Authenticate": "Bearer"})

    def key_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.headers.get("x-api-key") or None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        client = request.client.host if request.client else None
        refusal = foreign(request.headers, client)
        if refusal:
            response = JSONResponse({"detail": refusal}, status_code=403)
        else:
            try:
                response = await call_next(request)
            except Exception as e:  # noqa: BLE001 - one line, never a traceback on the wire
                response = JSONResponse({"detail": f"{type(e).__name__}: {e}"}, status_code=500)
        if request.method in CHANGING:
            p = getattr(request.state, "principal", None)
            outcome = "ok" if response.status_code < 400 else f"refused {response.status_code}"
            audit.record(p.name if p else "unknown", p.role if p else None, client,
                         f"{request.method} {request.url.path}", outcome, getattr(request.state, "audit", None))
        return response

    def foreign(headers, client: str | None) -> str | None:
        """Why a request is refused before any key is looked at, or None.  A loopback-only
        service answers loopback clients only, addressed by a loopback name (no DNS
        rebinding); a page of another origin in the operator's browser gets nothing
        (no cross-site request forgery: pause, abort and the queue need this page or a key)."""
        if not require_keys and not is_loopback(client):
            return "this service accepts loopback clients only (start it with --host)"
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") or "]:" in host else host.strip("[]")
        if not require_keys and hostname and not is_loopback(hostname):
            return f"host {host!r} is not a loopback name: use http://127.0.0.1:PORT/"
        origin = headers.get("origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != host:
            return f"requests from pages of another origin ({origin}) are refused"
        return None

    def need(role: str):
        def dep(request: Request) -> Principal:
            client = request.client.host if request.client else None
            p = principal_for(key_of(request), client)
            request.state.principal = p
            if not p.can(role):
                raise HTTPException(403, f"{p.name} ({p.role}) may not do this: it needs the {role} role")
            return p
        return dep

    observer, operator, admin = need("observer"), need("operator"), need("admin")

    def bad(e: Exception, code: int = 422):
        raise HTTPException(code, str(e))

    # ------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def page():
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @app.get("/api/whoami")
    def whoami(p: Principal = Depends(observer)):
        return {"name": p.name, "role": p.role, "via": p.via, "can": [r for r in ROLES if p.can(r)]}

    # ------------------------------------------------------------ station
    @app.get("/api/status")
    def status(p: Principal = Depends(observer)):
        return service.status()

    @app.get("/api/stations")
    def stations(p: Principal = Depends(observer)):
        """This station, and every other station whose service reports to the shared archive."""
        own = service.status()
        out, error = [own], None
        if service.archive_url:
            from labctl.archive.query import stations as archived

            try:
                from datetime import datetime, timezone

                stale_after = max(30.0, 6 * service.sync_period)
                for s in archived(service.archive_url):
                    if s["name"] != service.name and s.get("state"):
                        entry = {**s["state"], "updated": s["updated"], "remote": True}
                        age = (datetime.now(timezone.utc) - datetime.fromisoformat(s["updated"])).total_seconds()
                        if age > stale_after and entry.get("state") != "stopped":
                            entry["state"] = f"no report for {age:.0f} s"
                        out.append(entry)
            except LabctlError as e:
                error = str(e)
        return {"stations": out, "error": error}

    @app.post("/api/station/reconnect")
    def reconnect(request: Request, p: Principal = Depends(admin)):
        if service.control is not None:
            raise HTTPException(409, "a run is in progress: reconnect when the station is idle")
        service.station.errors.clear()
        service._reconnect_missing()
        request.state.audit = f"errors now: {sorted(service.station.errors)}"
        return {"errors": {r: str(e) for r, e in service.station.errors.items()}}

    @app.post("/api/sim/fault")
    def sim_fault(body: FaultBody, request: Request, p: Principal = Depends(admin)):
        """Virtual lab only: switch a fault on or off (rehearse alarms and the safety paths)."""
        request.state.audit = f"{body.fault} on {body.role}: {'on' if body.on else 'off'}"
        lab = service.station.lab
        if lab is None:
            raise HTTPException(409, "not a virtual-lab station: faults are only injected into the virtual lab")
        try:
            lab.inject(body.role, body.fault, body.on)
        except (ValueError, KeyError) as e:
            bad(str(e).strip("'\""))
        return {"role": body.role, "fault": body.fault, "on": body.on}

    # ------------------------------------------------------------ queue
    @app.get("/api/queue")
    def queue(p: Principal = Depends(observer)):
        return service.queue_view()

    @app.post("/api/queue", status_code=201)
    def submit(body: SubmitBody, request: Request, p: Principal = Depends(operator)):
        request.state.audit = f"{body.what} {' '.join(body.sets)}".strip()
        try:
            return service.submit(body.what, body.sets, body.protocol, p.name, body.note)
        except ConfigError as e:
            bad(e)
        except LabctlError as e:
            bad(e, 409)

    @app.delete("/api/queue/{item_id}")
    def cancel(item_id: int, request: Request, p: Principal = Depends(operator)):
        request.state.audit = f"queue item {item_id}"
        try:
            return service.cancel(item_id)
        except KeyError:
            raise HTTPException(404, f"no queued item {item_id} (a running item is stopped with abort)") from None

    @app.post("/api/queue/{item_id}/move")
    def move(item_id: int, body: MoveBody, request: Request, p: Principal = Depends(operator)):
        request.state.audit = f"queue item {item_id} to position {body.index}"
        try:
            return service.move(item_id, body.index)
        except KeyError:
            raise HTTPException(404, f"no queued item {item_id}") from None

    # ------------------------------------------------------------ run control
    def control(request: Request, action: str, p: Principal):
        cur = service.current or {}
        request.state.audit = f"run {cur.get('run_id') or '-'} step {cur.get('step') or '-'}"
        if action == "pause":
            msg = service.pause()
        elif action == "resume":
            msg = service.resume()
        else:
            msg = service.abort(f"aborted by {p.name} ({p.role}) from the service")
        return {"message": msg, "state": service.state()}

    @app.post("/api/run/pause")
    def pause(request: Request, p: Principal = Depends(operator)):
        return control(request, "pause", p)

    @app.post("/api/run/resume")
    def resume(request: Request, p: Principal = Depends(operator)):
        return control(request, "resume", p)

    @app.post("/api/run/abort")
    def abort(request: Request, p: Principal = Depends(operator)):
        """Always allowed to an operator: ramps the current down and records 'aborted'."""
        return control(request, "abort", p)

    @app.get("/api/run/rows")
    def rows(since: int = 0, limit: int = 50_000, p: Principal = Depends(observer)):
        data = service.rows[since:since + max(1, min(limit, 200_000))]
        cur = service.current or {}
        from labctl.service.engine import clean

        return clean({"step": cur.get("step"), "since": since, "rows": data})

    # ------------------------------------------------------------ runs
    def catalog():
        from labctl.catalog import Catalog

        return Catalog(service.data_home)

    def run_entry(run_id: str) -> dict:
        entry = catalog().get(run_id)
        if entry is None or entry.get("parent"):
            raise HTTPException(404, f"no run {run_id!r} in {service.data_home}")
        return entry

    @app.get("/api/runs")
    def runs(kind: str | None = None, status: str | None = None, since: str | None = None,
             p: Principal = Depends(observer)):
        from labctl.service.engine import clean

        return clean(list(reversed(catalog().list(kind=kind, status=status, since=since, parent=None))))

    @app.get("/api/runs/{run_id}")
    def run(run_id: str, p: Principal = Depends(observer)):
        from labctl.service.engine import clean

        entry = run_entry(run_id)
        entry["steps"] = catalog().list(parent=run_id)
        for k in ("parameters", "provenance"):
            try:
                entry[k] = json.loads(entry[k]) if entry.get(k) else None
            except ValueError:
                pass
        return clean(entry)

    def run_dir(run_id: str) -> Path:
        path = Path(run_entry(run_id)["path"])
        if not path.is_dir():
            raise HTTPException(404, f"run folder {path} is gone")
        return path

    @app.get("/api/runs/{run_id}/files")
    def files(run_id: str, p: Principal = Depends(observer)):
        base = run_dir(run_id)
        return [{"name": str(f.relative_to(base)), "bytes": f.stat().st_size}
                for f in sorted(base.rglob("*")) if f.is_file()]

    @app.get("/api/runs/{run_id}/files/{name:path}")
    def file(run_id: str, name: str, p: Principal = Depends(observer)):
        base = run_dir(run_id).resolve()
        target = (base / name).resolve()
        if base not in target.parents or not target.is_file():
            raise HTTPException(404, f"no file {name!r} in run {run_id}")
        return FileResponse(target)

    @app.get("/api/runs/{run_id}/analysis")
    def analysis(run_id: str, p: Principal = Depends(observer)):
        from labctl.analysis import analyze_run
        from labctl.service.engine import clean

        try:
            return clean(analyze_run(str(run_dir(run_id))))
        except LabctlError as e:
            bad(e)
        except Exception as e:  # noqa: BLE001 - an analysis failure is one line
            bad(f"{type(e).__name__}: {e}")

    @app.post("/api/runs/{run_id}/report")
    def make_report(run_id: str, request: Request, p: Principal = Depends(operator)):
        from labctl.report import build_report

        request.state.audit = f"report of run {run_id}"
        try:
            rep = build_report(str(run_dir(run_id)), fmt="html", embed=True)
        except LabctlError as e:
            bad(e)
        return {"report": f"/api/runs/{run_id}/files/{Path(rep.path).relative_to(run_dir(run_id))}"}

    # ------------------------------------------------------------ audit, keys, archive
    @app.get("/api/audit")
    def audit_log(n: int = 200, p: Principal = Depends(operator)):
        return audit.tail(max(1, min(n, 5000)))

    @app.get("/api/keys")
    def list_keys(p: Principal = Depends(admin)):
        return keys.list()

    @app.post("/api/keys", status_code=201)
    def add_key(body: KeyBody, request: Request, p: Principal = Depends(admin)):
        request.state.audit = f"key {body.name} role {body.role}"
        try:
            return {"name": body.name, "role": body.role, "key": keys.add(body.name, body.role)}
        except ConfigError as e:
            bad(e)

    @app.delete("/api/keys/{name}")
    def remove_key(name: str, request: Request, p: Principal = Depends(admin)):
        request.state.audit = f"key {name}"
        try:
            keys.remove(name)
        except ConfigError as e:
            bad(e, 404)
        return {"removed": name}

    @app.post("/api/archive/sync")
    def archive_sync(request: Request, p: Principal = Depends(operator)):
        if not service.archive_url:
            raise HTTPException(409, "no archive configured (catalog URL in the station file, LABCTL_CATALOG or "
                                     "--catalog)")
        from labctl.archive.sync import sync

        report = sync(service.data_home, service.archive_url, service.name)
        request.state.audit = report.line()
        return {"ok": report.error is None, "message": report.line()}

    # ------------------------------------------------------------ live
    @app.websocket("/ws")
    async def live(ws: WebSocket):
        client = ws.client.host if ws.client else None
        if foreign(ws.headers, client):
            await ws.close(code=1008)
            return
        key = ws.query_params.get("key") or None
        auth = ws.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        try:
            p = principal_for(key, client)
        except HTTPException as e:
            await ws.close(code=1008, reason=str(e.detail))
            return
        await ws.accept()
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=20_000)

        def push(message: dict) -> None:
            def put():
                if q.full():
                    try:
                        q.get_nowait()
                    except asyncio.QueueEmpty:
                        pass
                q.put_nowait(message)
            try:
                loop.call_soon_threadsafe(put)
            except RuntimeError:
                pass

        service.listeners.append(push)
        try:
            await ws.send_text(json.dumps({"type": "hello", "who": p.name, "role": p.role,
                                           "status": service.status()}, allow_nan=False))

            async def reader():
                while True:
                    await ws.receive_text()  # the page sends nothing that changes state over the socket

            read_task = asyncio.create_task(reader())
            try:
                while not read_task.done():
                    try:
                        first = await asyncio.wait_for(q.get(), timeout=1.0)
                    except asyncio.TimeoutError:
                        await ws.send_text(json.dumps({"type": "status", "status": service.status()},
                                                      allow_nan=False))
                        continue
                    batch = [first]
                    while not q.empty() and len(batch) < 500:
                        batch.append(q.get_nowait())
                    await ws.send_text(json.dumps({"type": "batch", "messages": batch}, allow_nan=False,
                                                  default=str))
            finally:
                read_task.cancel()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if push in service.listeners:
                service.listeners.remove(push)

    return app


