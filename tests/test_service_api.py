"""``labctl serve`` (issue 16): a real service process on the virtual lab, its API,
access control, audit log and signals; the key store; the app's own guards."""
from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labserve import LABCTL, ROOT, Serve, add_key, wait_for  # noqa: E402

pytest.importorskip("fastapi")


def audit_lines(data_dir: Path) -> list[dict]:
    path = data_dir / "service" / "audit.log"
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def primary_address() -> str | None:
    """This machine's non-loopback address, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


# ----------------------------------------------------------------- key store
def test_keys_are_stored_hashed_and_roles_checked(tmp_path):
    from labctl.service.keys import KeyStore

    store = KeyStore(tmp_path / "keys.json")
    key = store.add("alice", "operator")
    text = (tmp_path / "keys.json").read_text()
    assert key.startswith("lk_") and key not in text and "alice" in text
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    p = store.lookup(key)
    assert (p.name, p.role) == ("alice", "operator") and p.can("observer") and p.can("operator") and not p.can("admin")
    assert store.lookup(key + "x") is None and store.lookup("") is None
    with pytest.raises(Exception, match="exists"):
        store.add("alice", "observer")
    with pytest.raises(Exception, match="role"):
        store.add("bob", "root")
    store.remove("alice")
    assert store.lookup(key) is None


def test_keys_cli_prints_the_key_once_and_lists_without_it(tmp_path):
    key = add_key(tmp_path, "carol", "observer")
    out = subprocess.run([*LABCTL, "serve", "keys", "list", "--data-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and "carol\tobserver" in out.stdout and key not in out.stdout
    bad = subprocess.run([*LABCTL, "serve", "keys", "add", "dave", "--role", "god", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# ----------------------------------------------------------------- app guards (in-process)
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_a_loopback_only_service_refuses_other_clients(tmp_path):
    """Starlette's TestClient comes from host 'testclient', i.e. not loopback: refused."""
    from fastapi.testclient import TestClient

    from labctl.service.app import create_app, is_loopback
    from labctl.service.audit import AuditLog
    from labctl.service.keys import KeyStore

    class Dummy:
        archive_url = None

    keys = KeyStore(tmp_path / "keys.json")
    key = keys.add("alice", "admin")
    app = create_app(Dummy(), keys, AuditLog(tmp_path / "audit.log"), require_keys=False)
    client = TestClient(app)
    assert client.get("/api/status").status_code == 403
    assert client.get("/api/status", headers={"Authorization": f"Bearer {key}"}).status_code == 403
    assert client.post("/api/run/abort").status_code == 403
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("10.1.2.3")
    assert not is_loopback("testclient") and not is_loopback(None)


# ----------------------------------------------------------------- a real service
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    data = folder / "data-cryo-A"
    keys = {"obs": add_key(data, "olga", "observer"), "op": add_key(data, "oscar", "operator"),
            "admin": add_key(data, "ada", "admin")}
    s = Serve(folder, "cryo-A", speedup="30", data_dir=data)
    yield s, keys
    s.stop()


def test_openapi_schema_lists_the_api(served):
    s, _ = served
    schema = s.request("GET", "/openapi.json").json()
    for path in ("/api/status", "/api/queue", "/api/run/abort", "/api/run/pause", "/api/run/resume",
                 "/api/runs", "/api/runs/{run_id}/files", "/api/runs/{run_id}/analysis", "/api/audit"):
        assert path in schema["paths"], path


def test_service_is_loopback_only_without_host(served):
    s, keys = served
    assert s.url.startswith("http://127.0.0.1:")
    port = int(s.url.rsplit(":", 1)[1])
    addr = primary_address()
    if addr is not None:
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=3).close()
    # on loopback a caller without a key is the local operator; a key names its holder
    me = s.request("GET", "/api/whoami").json()
    assert (me["name"], me["role"], me["via"]) == ("local", "operator", "loopback")
    assert s.request("GET", "/api/whoami", keys["obs"]).json()["role"] == "observer"
    assert s.request("GET", "/api/whoami", "lk_wrong").status_code == 401


def test_other_origins_and_rebound_names_are_refused(served):
    """Cross-site request forgery from another page in the operator's browser, and DNS rebinding."""
    s, keys = served
    assert s.request("POST", "/api/run/pause", headers={"Origin": "http://evil.example"}).status_code == 403
    assert s.request("GET", "/api/status", headers={"Host": "evil.example"}).status_code == 403
    port = s.url.rsplit(":", 1)[1]
    assert s.request("GET", "/api/status", headers={"Origin": f"http://127.0.0.1:{port}"}).status_code == 200
    assert s.request("GET", "/api/status", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_queue_live_rows_abort_and_audit(served):
    from websockets.sync.client import connect

    s, keys = served
    bad = s.request("POST", "/api/queue", keys["op"], json={"what": "vi", "sets": ["current_step=-5"]})
    assert bad.status_code == 422 and "current_step" in bad.json()["detail"] and "\n" not in bad.json()["detail"]
    assert s.request("POST", "/api/queue", keys["obs"], json={"what": "vi"}).status_code == 403
    first = s.submit("vi", ["current_step=2"], key=keys["op"])
    second = s.submit("rt", key=keys["op"])
    third = s.submit("residual", ["ic=300"], key=keys["op"])
    # reorder and cancel what has not started
    order = s.request("POST", f"/api/queue/{third['id']}/move", keys["op"], json={"index": 0}).json()
    assert [i["id"] for i in order][0] == third["id"] or first["id"] not in [i["id"] for i in order]
    assert s.request("DELETE", f"/api/queue/{second['id']}", keys["op"]).status_code == 200
    assert s.request("DELETE", f"/api/queue/{third['id']}", keys["op"]).status_code == 200
    assert s.request("DELETE", f"/api/queue/{third['id']}", keys["op"]).status_code == 404
    st = s.wait_rows(3, keys["obs"])
    assert st["state"] == "running" and st["run"]["step"] == "vi" and st["run"]["operator"] == "oscar"
    assert st["readings"].get("current") is not None and st["readings"].get("temperature") is not None
    # live rows over the WebSocket (JSON only)
    rows = []
    with connect(s.url.replace("http", "ws") + f"/ws?key={keys['obs']}", open_timeout=30) as ws:
        hello = json.loads(ws.recv(timeout=30))
        assert hello["type"] == "hello" and hello["role"] == "observer"
        while len(rows) < 3:
            msg = json.loads(ws.recv(timeout=60))
            for m in msg.get("messages", [msg]):
                if m.get("type") == "row":
                    rows.append(m)
    assert all("Current (A)" in r["row"] and isinstance(r["t"], float) for r in rows)
    # the observer's abort is refused, the operator's is not
    assert s.request("POST", "/api/run/abort", keys["obs"]).status_code == 403
    assert s.request("POST", "/api/run/pause", keys["obs"]).status_code == 403
    r = s.request("POST", "/api/run/abort", keys["op"])
    assert r.status_code == 200 and r.json()["state"] in ("aborting", "idle")
    st = s.wait_idle(keys["obs"])
    done = st["history"][-1]
    assert done["status"] == "aborted" and "oscar" in done["reason"]
    run_id = done["run_id"]
    runs = s.request("GET", "/api/runs", keys["obs"]).json()
    entry = next(r for r in runs if r["id"] == run_id)
    assert entry["status"] == "aborted" and entry["operator"] == "oscar"
    files = [f["name"] for f in s.request("GET", f"/api/runs/{run_id}/files", keys["obs"]).json()]
    assert "01-vi.csv" in files and "run.log" in files
    log = s.request("GET", f"/api/runs/{run_id}/files/run.log", keys["obs"]).text
    assert "ramped to 0 A" in log and "output off" in log
    assert s.request("GET", f"/api/runs/{run_id}/files/../catalog.sqlite", keys["obs"]).status_code == 404
    # the audit log: who did what, granted or refused
    audit = audit_lines(s.data_dir)
    assert s.request("GET", "/api/audit", keys["obs"]).status_code == 403
    assert s.request("GET", "/api/audit", keys["op"]).json()[-1]["action"]
    def has(who, action, outcome):
        return any(a["who"] == who and a["action"] == action and a["outcome"] == outcome for a in audit)
    assert has("oscar", "POST /api/queue", "ok")
    assert has("oscar", "POST /api/run/abort", "ok")
    assert has("olga", "POST /api/run/abort", "refused 403")
    assert has("olga", "POST /api/queue", "refused 403")
    assert has("oscar", f"DELETE /api/queue/{second['id']}", "ok")
    assert all({"time", "who", "role", "client", "action", "outcome"} <= set(a) for a in audit)


def test_pause_ramps_down_and_resume_goes_on(served):
    s, keys = served
    s.submit("vi", ["current_step=2"], key=keys["op"])
    s.wait_rows(3)
    assert s.request("POST", "/api/run/pause", keys["op"]).json()["state"] in ("pausing", "paused")
    wait_for(lambda: s.status()["state"] == "paused", 120, what="paused")
    rows = s.status()["run"]["step_rows"]
    assert s.request("POST", "/api/run/resume", keys["op"]).json()["message"] == "resuming"
    wait_for(lambda: s.status()["state"] == "running" and s.status()["run"]["step_rows"] > rows, 120,
             what="rows after the resume")
    s.request("POST", "/api/run/abort", keys["op"])
    st = s.wait_idle()
    assert st["history"][-1]["status"] == "aborted"
    log = (s.data_dir / st["history"][-1]["run_id"] / "run.log").read_text()
    assert "paused at a safe point" in log and "resumed" in log


def test_analysis_of_a_recorded_run(served):
    s, keys = served
    runs = s.request("GET", "/api/runs", keys["obs"]).json()
    run_id = runs[0]["id"]
    r = s.request("GET", f"/api/runs/{run_id}/analysis", keys["obs"])
    assert r.status_code == 200 and r.json()["kind"] == "run" and r.json()["steps"]
    assert s.request("POST", f"/api/runs/{run_id}/report", keys["obs"]).status_code == 403
    made = s.request("POST", f"/api/runs/{run_id}/report", keys["op"])
    assert made.status_code == 200, made.text
    page = s.request("GET", made.json()["report"], keys["obs"])
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert s.request("GET", "/api/runs/no-such-run", keys["obs"]).status_code == 404


def test_admin_only_actions(served):
    s, keys = served
    assert s.request("POST", "/api/keys", keys["op"], json={"name": "eve", "role": "admin"}).status_code == 403
    made = s.request("POST", "/api/keys", keys["admin"], json={"name": "erin", "role": "observer"})
    assert made.status_code == 201 and made.json()["key"].startswith("lk_")
    assert s.request("GET", "/api/whoami", made.json()["key"]).json()["name"] == "erin"
    assert s.request("DELETE", "/api/keys/erin", keys["admin"]).status_code == 200
    assert s.request("GET", "/api/whoami", made.json()["key"]).status_code == 401


# ----------------------------------------------------------------- --host: keys required
def test_with_host_every_request_needs_a_valid_key(tmp_path):
    data = tmp_path / "data"
    refused = subprocess.run([*LABCTL, "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode == 2 and "keys add" in refused.stderr and "Traceback" not in refused.stderr
    obs = add_key(data, "olga", "observer")
    op = add_key(data, "oscar", "operator")
    s = Serve(tmp_path, "cryo-H", speedup="30", args=["--host", "0.0.0.0"], data_dir=data)
    try:
        for method, path in (("GET", "/api/status"), ("GET", "/api/runs"), ("POST", "/api/run/abort"),
                             ("POST", "/api/queue"), ("GET", "/api/whoami")):
            r = s.request(method, path)
            assert r.status_code in (401, 403), (method, path, r.status_code)
            assert s.request(method, path, "lk_not-a-key").status_code in (401, 403)
        assert s.request("GET", "/api/status", obs).status_code == 200
        addr = primary_address()
        if addr is not None:  # from the machine's network address, as another PC would come
            import httpx

            remote = f"http://{addr}:{s.url.rsplit(':', 1)[1]}"
            assert httpx.get(remote + "/api/status", timeout=30).status_code == 401
            assert httpx.post(remote + "/api/run/abort", timeout=30).status_code == 401
            assert httpx.get(remote + "/api/status", headers={"Authorization": f"Bearer {obs}"},
                             timeout=30).status_code == 200
        assert s.request("POST", "/api/run/abort", obs).status_code == 403
        assert s.request("POST", "/api/run/abort", op).status_code == 200  # nothing running: still allowed
        from websockets.sync.client import connect
        from websockets.exceptions import InvalidStatus, ConnectionClosed

        with pytest.raises((InvalidStatus, ConnectionClosed, OSError)):
            with connect(s.url.replace("http", "ws") + "/ws", open_timeout=30) as ws:
                ws.recv(timeout=30)
        audit = audit_lines(data)
        assert any(a["who"] == "unknown" and a["outcome"] == "refused 401" for a in audit)
        assert any(a["who"] == "olga" and a["action"] == "POST /api/run/abort" and a["outcome"] == "refused 403"
                   for a in audit)
    finally:
        s.stop()


# ----------------------------------------------------------------- signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_the_service_aborts_the_run_with_the_ramp_down(tmp_path, sig):
    s = Serve(tmp_path, "cryo-S", speedup="30")
    try:
        s.submit("vi")
        s.submit("rt")
        s.wait_rows(2)
    finally:
        rc = s.stop(sig)
    assert rc == 0, s.stderr()
    from labctl.catalog import Catalog

    runs = Catalog(s.data_dir).list(parent=None)
    assert len(runs) == 1, "the queued item behind it is not started"
    run = runs[0]
    name = signal.Signals(sig).name
    assert run["status"] == "aborted" and name in run["reason"] and run["ended"]
    log = (Path(run["path"]) / "run.log").read_text()
    assert "ramped to 0 A" in log and "output off" in log and name in log
    assert "Traceback" not in s.stderr()


# ----------------------------------------------------------------- the CLI as a client
def test_cli_client_mode(tmp_path):
    data = tmp_path / "data"
    obs = add_key(data, "olga", "observer")
    s = Serve(tmp_path, "cryo-C", speedup="30", data_dir=data)

    def client(*args, key=None):
        env = {**__import__("os").environ}
        env.pop("LABCTL_KEY", None)
        if key:
            env["LABCTL_KEY"] = key
        return subprocess.run([*LABCTL, "client", "--connect", s.url, *args], capture_output=True, text=True,
                              timeout=120, cwd=ROOT, env=env)
    try:
        out = client("submit", "vi", "--set", "current_step=2")
        assert out.returncode == 0 and "queued #1: vi current_step=2" in out.stdout, out.stderr
        s.wait_rows(1)
        out = client("status", key=obs)
        assert out.returncode == 0 and "cryo-C: running" in out.stdout
        refused = client("abort", key=obs)
        assert refused.returncode == 1 and "403" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        bad = client("submit", "vi", "--set", "current_step=-1")
        assert bad.returncode == 1 and "current_step" in bad.stderr and "Traceback" not in bad.stderr
        out = client("abort")
        assert out.returncode == 0 and "abort" in out.stdout
        s.wait_idle()
        out = client("runs", key=obs)
        assert out.returncode == 0 and "\tvi\taborted\t" in out.stdout
    finally:
        s.stop()
    down = client("status")
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_a_quench_is_an_alarm_and_the_run_ends_with_the_current_at_zero(tmp_path):
    """The guard in the service process catches it (safety applies whoever asks); the alarm
    reaches the status, the WebSocket and the page's banner."""
    data = tmp_path / "data"
    admin = add_key(data, "ada", "admin")
    op = add_key(data, "oscar", "operator")
    s = Serve(tmp_path, "cryo-Q", speedup="30", data_dir=data)
    try:
        assert s.request("POST", "/api/sim/fault", op, json={"role": "current_source", "fault": "quench"}).status_code == 403
        s.submit("radial-field", ["ic=400"], key=op)
        wait_for(lambda: (s.status()["readings"].get("current") or 0.0) > 20.0, 300, what="current flowing")
        r = s.request("POST", "/api/sim/fault", admin, json={"role": "current_source", "fault": "quench"})
        assert r.status_code == 200, r.text
        st = s.wait_idle(timeout=300)
        kinds = {a["kind"] for a in st["alarms"]}
        assert "quench" in kinds, st["alarms"]
        assert st["history"][-1]["status"] in ("aborted", "failed")
        assert abs(st["readings"].get("current", 0.0)) < 0.5
        bad = s.request("POST", "/api/sim/fault", admin, json={"role": "current_source", "fault": "meltdown"})
        assert bad.status_code == 422 and "meltdown" in bad.json()["detail"]
    finally:
        s.stop()


def test_labctl_run_connect_runs_on_the_service_and_follows_it(tmp_path):
    s = Serve(tmp_path, "cryo-X", speedup="max")
    env = {k: v for k, v in __import__("os").environ.items() if k != "LABCTL_KEY"}
    try:
        out = subprocess.run([*LABCTL, "run", "vi", "--connect", s.url, "--set", "current_step=10", "--note", "remote"],
                             capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr
        assert " completed (on " in out.stdout and "step vi completed" in out.stderr and "queued #1" in out.stderr
        run_id = out.stdout.split()[0]
        assert (s.data_dir / run_id / "01-vi.csv").exists()  # recorded by the service, in its data home
        bad = subprocess.run([*LABCTL, "run", "vi", "--connect", s.url, "--station", "x.toml"], capture_output=True,
                             text=True, timeout=60, cwd=ROOT, env=env)
        assert bad.returncode == 2 and "--station" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        s.stop()
