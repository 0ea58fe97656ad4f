"""TCP transport: each emulated instrument as a raw SCPI socket on 127.0.0.1.

Clients connect exactly as to LAN instruments (``TCPIP0::127.0.0.1::PORT::SOCKET``
with pyvisa-py).  Messages end only at the instrument's own terminators (see
``Emulator.frame``); replies carry the instrument's own terminator.  Binds to
the loopback interface only.  ``trace`` (a ``labctl.iotrace.IOTrace``) records
every message and reply from the instruments' side.
"""
from __future__ import annotations

import socket
import socketserver
import threading

from sim_instruments.emulator import ConnectionDropped, Emulator
from sim_instruments.lab import ROLES, VirtualLab

LOOPBACK = "127.0.0.1"


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        emulator: Emulator = self.server.emulator  # type: ignore[attr-defined]
        trace = self.server.trace  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(0.5)
        buf = ""
        while not self.server.stopping:  # type: ignore[attr-defined]
            if emulator.faults.drop:
                return  # closing the socket is what a dropped link looks like
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            # only the instrument's own terminators end a message: a client with the
            # wrong write termination waits for a reply that never comes
            messages, buf = emulator.frame(buf + chunk.decode("latin-1"))
            for message in messages:
                try:
                    reply = emulator.accept(message)
                except ConnectionDropped:
                    return
                if trace is not None and message.strip():
                    trace(message, reply)
                if reply is not None:
                    try:
                        sock.sendall((reply + emulator.termination).encode("latin-1"))
                    except OSError:
                        return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, emulator: Emulator, trace=None):
        self.emulator = emulator
        self.trace = trace
        self.stopping = False
        super().__init__((LOOPBACK, port), _Handler)


class LabServer:
    """Serves every instrument of a VirtualLab on consecutive loopback ports.

    ``base_port=0`` picks free ephemeral ports (for tests); ``resources`` then
    maps each role to its actual address.
    """

    def __init__(self, lab: VirtualLab, base_port: int | None = None, trace=None):
        self.lab = lab
        self.trace = trace
        base = lab.base_port if base_port is None else base_port
        self.servers: dict[str, _Server] = {}
        for k, role in enumerate(ROLES):
            port = 0 if base == 0 else base + k
            self.servers[role] = _Server(port, lab.instruments[role],
                                         trace.for_role(role) if trace is not None else None)
        self.threads: list[threading.Thread] = []

    @property
    def resources(self) -> dict[str, str]:
        return {role: f"TCPIP0::{LOOPBACK}::{srv.server_address[1]}::SOCKET" for role, srv in self.servers.items()}

    def start(self) -> "LabServer":
        for role, srv in self.servers.items():
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                 name=f"sim-{role}", daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        for srv in self.servers.values():
            srv.stopping = True
            srv.shutdown()
            srv.server_close()

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
