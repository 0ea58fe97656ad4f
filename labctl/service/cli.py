"""``labctl serve [--station FILE] [--host H] [--port N]`` and ``labctl serve keys add|list|remove``.

Signals: SIGTERM, SIGHUP and Ctrl-C (SIGINT) stop the service: a running run is
aborted with the ramp-down and recorded ('aborted', reason naming the signal), the
queue is left unrun, the instruments are brought to their safe state, finished runs
are pushed to the archive, then the process exits 0.  The handlers only record the
signal; a second signal never skips the ramp-down."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from labctl.errors import ConfigError

SIGNAL_NAMES = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP"}


def service_home(args, config=None) -> Path:
    from labctl import datadir

    return datadir.resolve(getattr(args, "data_dir", None), config, station_file=None).path / "service"


def _keystore(args):
    from labctl.config import load_station
    from labctl.service.keys import KeyStore

    if args.keys:
        return KeyStore(args.keys)
    return KeyStore(service_home(args, load_station(args.station)) / "keys.json")


def _keys_add(args) -> int:
    store = _keystore(args)
    key = store.add(args.name, args.role)
    print(key)
    print(f"labctl: key {args.name!r} ({args.role}) stored hashed in {store.path}; this is the only time it is "
          "shown: give it to its holder", file=sys.stderr)
    return 0


def _keys_list(args) -> int:
    store = _keystore(args)
    for k in store.list():
        print(f"{k['name']}\t{k['role']}\t{k.get('created', '')}")
    if not store.list():
        print(f"labctl: no keys in {store.path}", file=sys.stderr)
    return 0


def _keys_remove(args) -> int:
    store = _keystore(args)
    store.remove(args.name)
    print(f"removed key {args.name!r} from {store.path}")
    return 0


def _serve(args) -> int:
    import uvicorn

    from labctl import datadir
    from labctl.archive import redact, resolve_url
    from labctl.config import load_station
    from labctl.service.app import create_app, is_loopback
    from labctl.service.audit import AuditLog
    from labctl.service.engine import StationService
    from labctl.service.keys import KeyStore

    config = load_station(args.station)
    home = datadir.resolve(args.data_dir, config)
    url, source = resolve_url(args.catalog, config)
    host = args.host or "127.0.0.1"
    require_keys = bool(args.host) and not is_loopback(host)
    svc_home = home.path / "service"
    keys = KeyStore(args.keys or svc_home / "keys.json")
    if require_keys and not keys.list():
        raise ConfigError(f"--host {host}: every request will need an API key and {keys.path} has none; "
                          "create one first: labctl serve keys add NAME --role operator")
    if not (0 <= args.port <= 65535):
        raise ConfigError(f"--port {args.port}: must be 0-65535")
    audit = AuditLog(svc_home / "audit.log")
    pause_timeout = float(os.environ.get("LABCTL_PAUSE_TIMEOUT", args.pause_timeout))
    service = StationService(args.station, home.path, url, sync_period=args.sync_period,
                             pause_timeout=pause_timeout)
    received: list[int] = []
    wake = threading.Event()

    def handler(signum, frame):  # only records; the main loop acts
        received.append(signum)
        wake.set()

    previous = {}
    for name in SIGNAL_NAMES:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    service.start()
    app = create_app(service, keys, audit, require_keys, local_role=args.local_role)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=args.port, log_level="critical",
                                           access_log=False, ws="websockets-sansio", lifespan="off"))
    thread = threading.Thread(target=server.run, name="labctl-http", daemon=True)
    thread.start()
    while not server.started and thread.is_alive() and not received:
        time.sleep(0.05)
    if not server.started:
        service.shutdown("the service could not start")
        if received:
            return 1
        raise ConfigError(f"cannot listen on {host}:{args.port} (in use, or not an address of this machine); "
                          "choose another --port or --host")
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    service.service_url = f"http://{shown}:{port}"
    access = "API keys required" if require_keys else f"loopback only; callers without a key are {args.local_role}s"
    print(f"labctl serve: station {service.name!r} at {service.service_url}/ ({access}); data in {home.describe()}; "
          f"archive: {redact(url) + ' (' + source + ')' if url else 'none (local SQLite catalog only)'}",
          file=sys.stderr, flush=True)
    print(f"ready {service.service_url}", flush=True)
    try:
        while not received and thread.is_alive():
            wake.wait(0.5)
        name = signal.Signals(received[0]).name if received else "the HTTP server stopped"
        reason = f"{SIGNAL_NAMES.get(name, name)} to the service"
        print(f"labctl serve: {reason}: aborting any run (ramping the current down), then stopping", file=sys.stderr,
              flush=True)
        audit.record("system", None, None, "service stop", "ok", reason)
        final = service.shutdown(reason)
        if final is not None and final.get("status") == "aborted" and reason in str(final.get("reason", "")):
            print(f"labctl serve: run {final['id']} aborted ({final.get('reason')})", file=sys.stderr, flush=True)
    finally:
        server.should_exit = True
        thread.join(10)
        for sig, old in previous.items():
            signal.signal(sig, old)
    print("labctl serve: stopped (every instrument in its safe state)", file=sys.stderr, flush=True)
    return 0


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "serve", help="serve a station: HTTP + WebSocket API, run queue, monitor page (one process per station)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Own the station's instruments, run a queue on the runner, and serve the API "
                    "(/docs, /openapi.json) and the monitor page (/). Loopback only unless --host is given; "
                    "with --host every request needs an API key.",
        epilog="examples:\n"
               "  labctl serve                                   # the virtual lab on http://127.0.0.1:8600/\n"
               "  labctl serve keys add alice --role operator --station lab.toml\n"
               "  labctl serve --station lab.toml --host 0.0.0.0 --port 8600\n\n"
               "SIGTERM, SIGHUP and Ctrl-C abort a running run with the ramp-down, record it, and stop.")
    p.add_argument("--station", help="station TOML (default: the built-in virtual lab)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1, loopback only, no key needed); "
                                  "any other address requires API keys")
    p.add_argument("--port", type=int, default=8600, help="port (default 8600; 0 = any free port)")
    p.add_argument("--data-dir", help="the station's data home (default: as `labctl run`)")
    p.add_argument("--catalog", metavar="URL", help="shared archive postgresql://... (default: $LABCTL_CATALOG, "
                                                    "else catalog in the station file)")
    p.add_argument("--keys", metavar="FILE", help="API key file (default: <data home>/service/keys.json)")
    p.add_argument("--local-role", choices=("observer", "operator", "admin"), default="operator",
                   help="role of a key-less loopback caller when --host is not given (default operator)")
    p.add_argument("--sync-period", type=float, default=5.0, metavar="SECONDS",
                   help="how often finished runs are pushed to the archive (default 5; also after every run)")
    p.add_argument("--pause-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="a pause nobody resumes aborts after this long (default 300; LABCTL_PAUSE_TIMEOUT)")
    p.set_defaults(func=_serve)
    ksub = p.add_subparsers(dest="serve_verb", metavar="keys")
    keys = ksub.add_parser("keys", help="API keys: add NAME --role ROLE | list | remove NAME")
    kk = keys.add_subparsers(dest="keys_verb", metavar="ACTION")
    kk.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--station", help="station TOML whose data home holds the keys")
    common.add_argument("--data-dir", help="data home holding service/keys.json")
    common.add_argument("--keys", metavar="FILE", help="the key file itself")
    add = kk.add_parser("add", parents=[common], help="make a key (printed once; stored hashed)")
    add.add_argument("name", help="who holds it, e.g. alice")
    add.add_argument("--role", required=True, choices=("observer", "operator", "admin"))
    add.set_defaults(func=_keys_add)
    ls = kk.add_parser("list", parents=[common], help="names, roles and creation times (never the keys)")
    ls.set_defaults(func=_keys_list)
    rm = kk.add_parser("remove", parents=[common], help="revoke a key")
    rm.add_argument("name")
    rm.set_defaults(func=_keys_remove)
