"""From the acquisition thread to the GUI thread without a signal per row.

A :class:`~labctl.stream.LiveStream` subscriber must be cheap and must never
touch a widget: it only appends ``(source, topic, payload)`` to a deque.  The
window drains the deque on its redraw timer (20-30 Hz), so a burst of 10^5 rows
costs one redraw, not 10^5 queued signals.
"""
from __future__ import annotations

import collections
import threading


class StreamBridge:
    def __init__(self, maxlen: int | None = None):
        self._queue: collections.deque = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.received = 0

    def subscriber(self, source: str):
        """A ``LiveStream.subscribe`` callback tagging events with ``source`` ('run', 'replay')."""

        def on_event(topic, payload):
            self._queue.append((source, topic, payload))  # deque.append is atomic
            self.received += 1

        return on_event

    def put(self, source: str, topic: str, payload) -> None:
        self._queue.append((source, topic, payload))

    def drain(self, limit: int | None = None) -> list:
        out = []
        pop = self._queue.popleft
        with self._lock:
            try:
                while limit is None or len(out) < limit:
                    out.append(pop())
            except IndexError:
                pass
        return out

    def __len__(self) -> int:
        return len(self._queue)
