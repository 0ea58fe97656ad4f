"""The live stream: one path for rows, status and progress from live runs and replays.

Subscribers (CLI progress bar, GUI, tests) receive ``(topic, payload)``;
topics are ``row`` ({"step", "row"}), ``step`` ({"step", "kind", "status", ...}),
``progress`` ({"step", "percent"}) and ``log`` (a string).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

Subscriber = Callable[[str, Any], None]


class LiveStream:
    def __init__(self):
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def publish(self, topic: str, payload: Any) -> None:
        for fn in list(self._subscribers):
            try:
                fn(topic, payload)
            except Exception:  # a broken viewer must never stop an acquisition
                pass
