"""TCP transport: each emulated instrument as a raw SCPI socket on 127.0.0.1.

Clients connect exactly as to LAN instruments (``TCPIP0::127.0.0.1::PORT::SOCKET``
with pyvisa-py).  Messages end at CR or LF; replies carry the instrument's own
terminator.  Binds to the loopback interface only.
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
        sock: socket.socket = self.request
        sock.settimeout(0.5)
        buf = b""
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
            buf += chunk
            while True:
                cut = [i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0]
                if not cut:
                    break
                k = min(cut)
                message, buf = buf[:k].decode("latin-1"), buf[k + 1:]
                if not message.strip():
                    continue
                try:
                    reply = emulator.handle(message)
                except ConnectionDropped:
                    return
                if reply is not None:
                    try:
                        sock.sendall((reply + emulator.termination).encode("latin-1"))
                    except OSError:
                        return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, emulator: Emulator):
        self.emulator = emulator
        self.stopping = False
        super().__init__((LOOPBACK, port), _Handler)


class LabServer:
    """Serves every instrument of a VirtualLab on consecutive loopback ports.

    ``base_port=0`` picks free ephemeral ports (for tests); ``resources`` then
    maps each role to its actual address.
    """

    def __init__(self, lab: VirtualLab, base_port: int | None = None):
        self.lab = lab
        base = lab.base_port if base_port is None else base_port
        self.servers: dict[str, _Server] = {}
        for k, role in enumerate(ROLES):
            port = 0 if base == 0 else base + k
            self.servers[role] = _Server(port, lab.instruments[role])
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
