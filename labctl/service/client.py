"""``labctl client --connect URL ACTION``: the CLI as a client of a running ``labctl serve``
(status, queue, submit, pause, resume, abort, watch, runs).  The key comes from
``--key`` or ``LABCTL_KEY``; nothing is needed on the service's own loopback."""
from __future__ import annotations

import json
import os
import sys

from labctl.errors import ConfigError, LabctlError


class _Remote:
    def __init__(self, url: str, key: str | None):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--connect {url!r}: expected http://HOST:PORT of a `labctl serve`")
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body=None):
        import httpx

        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            r = httpx.request(method, self.url + path, headers=headers, json=body, timeout=60)
        except httpx.HTTPError as e:
            raise LabctlError(f"cannot reach {self.url} ({type(e).__name__}: {e})") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:200]
            if isinstance(detail, list):  # a request the schema refused
                detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
            raise LabctlError(f"{self.url}: {method} {path} refused ({r.status_code}): {detail}")
        return r.json()


def _client(args) -> int:
    remote = _Remote(args.connect, args.key or os.environ.get("LABCTL_KEY"))
    action = args.action
    if action == "status":
        st = remote.call("GET", "/api/status")
        run = st.get("run") or {}
        r = st.get("readings") or {}
        print(f"{st['station']}: {st['state']}" + (f", run {run.get('run_id')} step {run.get('step')} "
                                                    f"({run.get('percent') or 0:.0f} %, {run.get('step_rows')} rows)"
                                                    if run else ""))
        print("  " + ", ".join(f"{k} {v:.6g}" for k, v in r.items() if isinstance(v, (int, float))))
        for a in st.get("alarms", [])[-5:]:
            print(f"  ALARM {a['kind']}: {a['text']}")
        for q in st.get("queue", []):
            print(f"  queued #{q['id']}: {q['what']} {' '.join(q['sets'])} ({q['operator']})")
    elif action == "submit":
        if not args.what:
            raise ConfigError("submit: name what to run, e.g. labctl client --connect URL submit vi --set current_step=2")
        item = remote.call("POST", "/api/queue", {"what": args.what, "sets": args.set or [], "note": args.note or []})
        print(f"queued #{item['id']}: {item['what']} {' '.join(item['sets'])}")
    elif action in ("pause", "resume", "abort"):
        print(remote.call("POST", f"/api/run/{action}")["message"])
    elif action == "queue":
        for q in remote.call("GET", "/api/queue"):
            print(f"#{q['id']}\t{q['what']}\t{' '.join(q['sets'])}\t{q['operator']}")
    elif action == "runs":
        for r in remote.call("GET", "/api/runs"):
            print(f"{r['id']}\t{r['kind']}\t{r['status']}\t{r.get('operator') or ''}\t{r.get('reason') or ''}")
    elif action == "watch":
        return _watch(remote)
    return 0


def _watch(remote: _Remote) -> int:
    """Rows and events of the running run, one JSON line each, until Ctrl-C."""
    from websockets.sync.client import connect

    url = remote.url.replace("http", "ws", 1) + "/ws" + (f"?key={remote.key}" if remote.key else "")
    try:
        with connect(url, open_timeout=30) as ws:
            while True:
                msg = json.loads(ws.recv())
                for m in msg.get("messages", [msg]):
                    if m.get("type") in ("row", "step", "alarm", "finished"):
                        print(json.dumps(m), flush=True)
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        raise LabctlError(f"cannot watch {remote.url}: {e}") from None
    except Exception as e:  # websockets' own errors: one line
        raise LabctlError(f"{remote.url}: live stream closed ({type(e).__name__}: {e})") from None


def register(sub) -> None:
    import argparse

    p = sub.add_parser("client", help="act on a running `labctl serve` (status, submit, pause, resume, abort, watch)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n"
                              "  labctl client --connect http://cryostat-1.lab:8600 status\n"
                              "  LABCTL_KEY=lk_... labctl client --connect http://cryostat-1.lab:8600 submit vi "
                              "--set current_step=2\n"
                              "  labctl client --connect http://127.0.0.1:8600 abort")
    p.add_argument("--connect", required=True, metavar="URL", help="the service, e.g. http://127.0.0.1:8600")
    p.add_argument("--key", help="API key (default: $LABCTL_KEY; none needed on the service's loopback)")
    p.add_argument("action", choices=("status", "queue", "submit", "pause", "resume", "abort", "watch", "runs"))
    p.add_argument("what", nargs="?", help="submit: protocol or a step name")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="submit: parameter override (repeatable)")
    p.add_argument("--note", action="append", metavar="TEXT", help="submit: note recorded with the run")
    p.set_defaults(func=_client)


def remote_run(args) -> int:
    """``labctl run WHAT --connect URL``: queue it on the service, follow it to its end
    (rows, steps, alarms on stderr), exit with the run's status like a local run.
    Ctrl-C asks the service to abort it (the ramp-down happens there) and waits."""
    import signal as _signal
    import threading

    from websockets.sync.client import connect

    remote = _Remote(args.connect, getattr(args, "key", None) or os.environ.get("LABCTL_KEY"))
    for option in ("station", "sample", "field_model", "seed", "data_dir", "trace"):
        if getattr(args, option, None):
            raise ConfigError(f"--{option.replace('_', '-')} is the service's business with --connect "
                              "(its station file and data home apply)")
    protocol = None
    if getattr(args, "protocol", None):
        try:
            protocol = open(args.protocol, encoding="utf-8").read()
        except OSError as e:
            raise ConfigError(f"--protocol {args.protocol}: cannot read it ({e.strerror or e})") from None
    url = remote.url.replace("http", "ws", 1) + "/ws" + (f"?key={remote.key}" if remote.key else "")
    say = (lambda text: print(f"labctl: {text}", file=sys.stderr, flush=True))
    try:
        ws = connect(url, open_timeout=30)
    except Exception as e:  # noqa: BLE001 - refused key, no service: one line
        raise LabctlError(f"cannot follow runs on {remote.url} ({type(e).__name__}: {e})") from None
    with ws:
        item = remote.call("POST", "/api/queue", {"what": args.what, "sets": args.set or [], "protocol": protocol,
                                                  "note": getattr(args, "note", None) or []})
        say(f"queued #{item['id']} on {remote.url}: {item['what']} {' '.join(item['sets'])}".rstrip())
        aborting = threading.Event()

        def on_interrupt(signum, frame):
            if not aborting.is_set():
                aborting.set()
                threading.Thread(target=lambda: say(remote.call("POST", "/api/run/abort")["message"]),
                                 daemon=True).start()

        previous = _signal.signal(_signal.SIGINT, on_interrupt) if threading.current_thread() is threading.main_thread() else None
        rows = 0
        try:
            while True:
                msg = json.loads(ws.recv())
                for m in msg.get("messages", [msg]):
                    kind = m.get("type")
                    if kind == "row":
                        rows += 1
                    elif kind == "step" and m.get("status") != "running":
                        say(f"step {m.get('step')} {m.get('status')} ({m.get('rows')} rows)"
                            + (f": {m['reason']}" if m.get("reason") else ""))
                    elif kind == "step":
                        say(f"step {m.get('step')} running")
                    elif kind == "alarm":
                        say(f"ALARM {m.get('kind')}: {m.get('text')}")
                    elif kind == "finished" and m["item"]["id"] == item["id"]:
                        done = m["item"]
                        print(f"{done.get('run_id') or '-'} {done['status']} (on {remote.url})", flush=True)
                        if done["status"] != "completed":
                            say(f"run {done['status']}: {done.get('reason', '')}")
                        return {"completed": 0}.get(done["status"], 1)
        except KeyboardInterrupt:
            return 1
        except Exception as e:  # noqa: BLE001 - the connection dropped: say where the run is
            raise LabctlError(f"lost the live stream from {remote.url} ({type(e).__name__}); the run goes on there: "
                              f"labctl client --connect {remote.url} status") from None
        finally:
            if previous is not None:
                _signal.signal(_signal.SIGINT, previous)
