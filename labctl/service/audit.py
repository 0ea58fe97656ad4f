"""The audit log: one JSON line per state-changing request (granted or refused):
when, who (key name, or 'local' for a key-less loopback caller), their role, the
client address, the action, and the outcome.  ``<data home>/service/audit.log``."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path


class AuditLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, who: str, role: str | None, client: str | None, action: str, outcome: str,
               detail: str | None = None) -> dict:
        entry = {"time": datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds"),
                 "who": who, "role": role, "client": client, "action": action, "outcome": outcome}
        if detail:
            entry["detail"] = detail
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
        return entry

    def tail(self, n: int = 200) -> list[dict]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()[-n:]
        except FileNotFoundError:
            return []
        out = []
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except ValueError:
                continue
        return out
