"""Growing numpy buffers and the live curve drawn from them.

Rows are appended in place (amortised O(1), capacity doubling); a redraw hands
pyqtgraph *views* of the filled part, so nothing is copied or re-read from a
file.  The curve peak-downsamples to the screen and clips to the visible range,
so a redraw costs about the same at 10^4 and 10^6 points.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg


class GrowingBuffer:
    """Parallel float64 columns that grow by doubling."""

    def __init__(self, columns: int = 2, capacity: int = 1024):
        self._data = np.empty((columns, max(16, int(capacity))), dtype=float)
        self.n = 0

    @property
    def capacity(self) -> int:
        return self._data.shape[1]

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= self.capacity:
            return
        cap = self.capacity
        while cap < need:
            cap *= 2
        grown = np.empty((self._data.shape[0], cap), dtype=float)
        grown[:, : self.n] = self._data[:, : self.n]
        self._data = grown

    def append(self, *values: float) -> None:
        self._reserve(1)
        self._data[:, self.n] = values
        self.n += 1

    def extend(self, *columns) -> None:
        cols = [np.asarray(c, dtype=float).ravel() for c in columns]
        m = len(cols[0])
        if m == 0:
            return
        self._reserve(m)
        for k, c in enumerate(cols):
            self._data[k, self.n : self.n + m] = c
        self.n += m

    def column(self, k: int) -> np.ndarray:
        """A view of the filled part of column ``k`` (valid until the next append)."""
        return self._data[k, : self.n]

    def clear(self) -> None:
        self.n = 0

    def __len__(self) -> int:
        return self.n


class LiveCurve:
    """A pyqtgraph curve fed incrementally; ``redraw()`` only does work when new data came."""

    def __init__(self, plot: pg.PlotItem, name: str | None = None, pen=None, symbol=None, symbol_size=6,
                 symbol_brush=None, finite: bool = False, capacity: int = 1024):
        self.buffer = GrowingBuffer(2, capacity)
        kwargs = dict(pen=pen, name=name, skipFiniteCheck=finite, connect="finite" if not finite else "all")
        if symbol:
            kwargs.update(symbol=symbol, symbolSize=symbol_size, symbolPen=None,
                          symbolBrush=symbol_brush if symbol_brush is not None else (pen.color() if pen is not None
                                                                                     and hasattr(pen, "color")
                                                                                     else "k"))
        self.item = pg.PlotDataItem([], [], **kwargs)
        plot.addItem(self.item)  # (PlotItem.addItem imposes the plot's own downsampling settings: set ours after)
        self.item.setDownsampling(auto=True, method="peak")
        self.item.setClipToView(True)
        self.plot = plot
        self.dirty = False

    def append(self, x: float, y: float) -> None:
        self.buffer.append(x, y)
        self.dirty = True

    def extend(self, x, y) -> None:
        if len(x):
            self.buffer.extend(x, y)
            self.dirty = True

    def redraw(self) -> bool:
        if not self.dirty:
            return False
        self.item.setData(self.buffer.column(0), self.buffer.column(1))
        self.dirty = False
        return True

    def clear(self) -> None:
        self.buffer.clear()
        self.item.setData([], [])
        self.dirty = False

    def remove(self) -> None:
        self.plot.removeItem(self.item)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.buffer.column(0).copy(), self.buffer.column(1).copy()

    def __len__(self) -> int:
        return self.buffer.n
