"""Helpers for tests that start labctl processes: free ports and a stop that never leaks."""
from __future__ import annotations

import os
import signal
import socket
import subprocess

# Linux hands out 32768-60999 to client sockets and to servers bound to port 0; a fixed port in
# that range can be taken at any moment by some connection (the fault matrix opens thousands),
# so fixed test ports live below it.
LOW, HIGH, STEP = 20000, 32000, 20


def free_base_port(n: int = 10) -> int:
    """The first port of ``n`` consecutive free loopback ports below the ephemeral range.
    Parallel test sessions start their search at different places (from the pid)."""
    slots = (HIGH - LOW) // STEP
    first = os.getpid() % slots
    for k in range(slots):
        base = LOW + STEP * ((first + k) % slots)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports between {LOW} and {HIGH}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[str, str, bool]:
    """Send ``sig`` and wait; a process still running after ``timeout`` s is killed, so a
    failed test never leaves a server behind.  Returns (stdout, stderr, stopped by ``sig``)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
        return out or "", err or "", True
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return out or "", err or "", False


def wait_ready(proc: subprocess.Popen) -> dict[str, str]:
    """Read ``labctl sim serve``'s lines up to ``ready``: role -> VISA resource.  A server that
    ends first (its ports taken, say) fails the test with what it printed."""
    resources = {}
    for line in proc.stdout:
        if line.strip() == "ready":
            return resources
        parts = line.split()
        if len(parts) == 3:
            resources[parts[0]] = parts[2]
    _, err, _ = stop(proc, timeout=10)
    raise AssertionError(f"sim serve ended without 'ready': {(err or '').strip()[-500:]}")
