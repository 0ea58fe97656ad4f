"""Network exposure (issue 7): the simulator listens on loopback only, and a run on the
in-process virtual lab opens no socket at all."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from labctl.cli import main
from sim_instruments.lab import ROLES, VirtualLab
from sim_instruments.server import LabServer


def _non_loopback_ipv4() -> str | None:
    """An address of this host other than 127.x (the route to the outside, or the hostname's)."""
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            candidates.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        candidates.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    return next((a for a in candidates if not a.startswith("127.") and a != "0.0.0.0"), None)


def test_sim_server_binds_loopback_only():
    lab = VirtualLab(seed=1, speedup=1000, base_port=0)
    server = LabServer(lab, base_port=0).start()
    try:
        assert set(server.servers) == set(ROLES)
        for role, srv in server.servers.items():
            host, port = srv.server_address
            assert host == "127.0.0.1", (role, host)
            assert port > 0
            assert server.resources[role] == f"TCPIP0::127.0.0.1::{port}::SOCKET"
        # it does answer on loopback
        port = server.servers["voltmeter"].server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
            c.sendall(b"*IDN?\n")
            assert b"2182" in c.recv(200)
        # and nobody else can reach it
        other = _non_loopback_ipv4()
        if other is None:
            pytest.skip("this host has no non-loopback IPv4 address to try")
        for srv in server.servers.values():
            with pytest.raises(OSError):
                socket.create_connection((other, srv.server_address[1]), timeout=1).close()
    finally:
        server.stop()


def _listening_inodes(proto: str) -> set[str]:
    """Inodes of sockets in LISTEN state (TCP) or bound (UDP) from /proc/net/<proto>."""
    out = set()
    for name in (proto, proto + "6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            state, inode = f[3], f[9]
            if (proto == "tcp" and state == "0A") or (proto == "udp" and inode != "0"):
                out.add(inode)
    return out


def _my_socket_inodes() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
def test_in_process_protocol_run_opens_no_socket(tmp_path):
    before = _my_socket_inodes()
    seen: set[str] = set()
    listening: set[str] = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            mine = _my_socket_inodes() - before
            seen.update(mine)
            listening.update(mine & (_listening_inodes("tcp") | _listening_inodes("udp")))
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    code = main(["run", "protocol", "--quiet", "--data-dir", str(tmp_path), "--set", "rt.sweeps=cooling",
                 "--set", "vi.current_step=10", "--set", "radial-field.repeats=1", "--set", "radial-scan.n_points=11"])
    stop.set()
    t.join(5)
    assert code == 0
    assert listening == set(), "a listening socket was opened during the run"
    assert seen == set(), f"the run opened {len(seen)} socket(s)"
    assert _my_socket_inodes() - before == set()
