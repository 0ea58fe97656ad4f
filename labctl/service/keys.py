"""API keys with roles, stored hashed (``<data home>/service/keys.json``, mode 0600).

A key is ``lk_`` + 43 random URL-safe characters (256 bits), shown once when it is
made; the file keeps only its SHA-256 (a random key of that length needs no slow
hash), its name, role and creation time.  The file is re-read when it changes, so
``labctl serve keys add`` takes effect in a running service."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from labctl.errors import ConfigError

ROLES = {"observer": 1, "operator": 2, "admin": 3}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str = "key"  # "key" or "loopback" (no key, on a loopback-only service)

    def can(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime = None
        self._keys: list[dict] = []

    def _load(self) -> list[dict]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._keys, self._mtime = [], None
            return self._keys
        if mtime != self._mtime:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                keys = [k for k in data.get("keys", []) if isinstance(k, dict) and k.get("role") in ROLES]
            except (OSError, ValueError, AttributeError) as e:
                raise ConfigError(f"{self.path}: unreadable key file ({e})") from None
            self._keys, self._mtime = keys, mtime
        return self._keys

    def _save(self, keys: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"keys": keys}, f, indent=1)
        os.replace(tmp, self.path)
        self._mtime = None

    def add(self, name: str, role: str) -> str:
        if role not in ROLES:
            raise ConfigError(f"role {role!r}: choose observer, operator or admin")
        if not NAME.match(name or ""):
            raise ConfigError(f"key name {name!r}: letters, digits and _ . @ - (up to 64), e.g. alice")
        with self._lock:
            keys = list(self._load())
            if any(k["name"] == name for k in keys):
                raise ConfigError(f"a key named {name!r} exists; remove it first (labctl serve keys remove {name})")
            key = "lk_" + secrets.token_urlsafe(32)
            keys.append({"name": name, "role": role, "sha256": digest(key),
                         "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            self._save(keys)
        return key

    def remove(self, name: str) -> None:
        with self._lock:
            keys = list(self._load())
            if not any(k["name"] == name for k in keys):
                raise ConfigError(f"no key named {name!r} in {self.path}")
            self._save([k for k in keys if k["name"] != name])

    def list(self) -> list[dict]:
        with self._lock:
            return [{k: v for k, v in entry.items() if k != "sha256"} for entry in self._load()]

    def lookup(self, key: str) -> Principal | None:
        if not key or len(key) > 200:
            return None
        h = digest(key)
        with self._lock:
            keys = self._load()
        for entry in keys:
            if hmac.compare_digest(entry.get("sha256", ""), h):
                return Principal(entry["name"], entry["role"])
        return None
