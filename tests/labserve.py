"""Real ``labctl serve`` processes on the virtual lab for the service, archive and
browser tests (issue 16)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LABCTL = [sys.executable, "-m", "labctl"]


def station_file(folder: Path, name: str, speedup="30", seed: int = 1) -> Path:
    """The built-in virtual lab under another name and clock speed-up."""
    text = (ROOT / "labctl" / "stations" / "sim.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^name = "virtual lab"', f'name = "{name}"', text)
    value = f'"{speedup}"' if str(speedup) == "max" else speedup
    text = re.sub(r'(?m)^speedup = "max".*$', f"speedup = {value}", text)
    text = re.sub(r"(?m)^seed = \d+", f"seed = {seed}", text)
    path = Path(folder) / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def add_key(data_dir: Path, name: str, role: str) -> str:
    out = subprocess.run([*LABCTL, "serve", "keys", "add", name, "--role", role, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[0]


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Serve:
    """``labctl serve`` in a subprocess; ``url`` once it printed ``ready URL``."""

    def __init__(self, folder: Path, name: str = "cryo-A", speedup="30", args: list[str] = (), env: dict | None = None,
                 data_dir: Path | None = None):
        self.folder = Path(folder)
        self.name = name
        self.data_dir = Path(data_dir or self.folder / f"data-{name}")
        self.station = station_file(self.folder, name, speedup)
        self.stderr_path = self.folder / f"serve-{name}.err"
        self._err = open(self.stderr_path, "w")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("LABCTL_CATALOG", None) if "LABCTL_CATALOG" not in (env or {}) else None
        self.proc = subprocess.Popen([*LABCTL, "serve", "--station", str(self.station), "--port", "0",
                                      "--data-dir", str(self.data_dir), *args],
                                     stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL, text=True,
                                     cwd=ROOT, env=full_env)
        self.url = None
        lines: list[str] = []

        def read():
            for line in self.proc.stdout:
                lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            ready = [ln for ln in lines if ln.startswith("ready ")]
            if ready:
                self.url = ready[0].split()[1]
                break
            time.sleep(0.05)
        if self.url is None:
            self.kill()
            raise AssertionError(f"labctl serve did not start: {self.stderr()}")

    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, key: str | None = None, **kw) -> httpx.Response:
        headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def status(self, key: str | None = None) -> dict:
        r = self.request("GET", "/api/status", key)
        r.raise_for_status()
        return r.json()

    def submit(self, what: str, sets=(), key: str | None = None) -> dict:
        r = self.request("POST", "/api/queue", key, json={"what": what, "sets": list(sets)})
        assert r.status_code == 201, r.text
        return r.json()

    def wait_rows(self, n: int, key: str | None = None, timeout: float = 180) -> dict:
        def enough():
            st = self.status(key)
            return st if st["run"] and (st["run"].get("step_rows") or 0) >= n else None
        return wait_for(enough, timeout, what=f"{n} rows on {self.name}")

    def wait_idle(self, key: str | None = None, timeout: float = 300) -> dict:
        return wait_for(lambda: (lambda s: s if s["state"] == "idle" and not s["queue"] else None)(self.status(key)),
                        timeout, what=f"{self.name} idle")

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        try:
            self._err.close()
        except Exception:
            pass
