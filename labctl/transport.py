"""Bounded VISA calls over raw TCP sockets (LAN instruments with pyvisa-py).

pyvisa-py's ``TCPIPSocketSession`` never looks for end of file: when the peer
closes the socket, ``select`` reports it readable and ``recv`` returns ``b""``
for ever, so ``clear()`` (and ``flush``, which calls it) loops without end and
``read()`` spins until its time-out.  A lost link must be an error at once:

* ``read``  - an empty ``recv`` after ``select`` said readable is the peer's
  close: VI_ERROR_CONN_LOST immediately;
* ``clear`` - discards what is pending for at most ``CLEAR_BUDGET`` seconds,
  and reports a closed peer as VI_ERROR_CONN_LOST;
* ``write`` - waits for the socket to accept data for at most the session's
  time-out (pyvisa-py waits without limit).

``install()`` registers the bounded session for ``TCPIP::…::SOCKET`` resources;
the station calls it before opening any pyvisa-py resource.
"""
from __future__ import annotations

import logging
import select
import socket
import time

from pyvisa import constants
from pyvisa.constants import StatusCode

log = logging.getLogger("labctl.transport")

CLEAR_BUDGET = 0.5  # s: longest a clear may spend discarding pending input
_installed = False


def _bounded_session_class():
    from pyvisa_py.sessions import Session
    from pyvisa_py.tcpip import TCPIPSocketSession

    class BoundedTCPIPSocketSession(TCPIPSocketSession):
        """TCPIPSocketSession whose every call ends: a closed peer is an error at once."""

        def read(self, count: int):
            """pyvisa-py's read (termination character, count, time-out), except that an
            empty ``recv`` on a readable socket (the peer closed) ends it at once."""
            term_char, _ = self.get_attribute(constants.ResourceAttribute.termchar)
            term = bytes([term_char]) if term_char is not None else b""
            term_en, _ = self.get_attribute(constants.ResourceAttribute.termchar_enabled)
            deadline = time.monotonic() + (self.timeout if self.timeout is not None else 2.0)
            while True:
                if term_en and term and term in self._pending_buffer:
                    k = self._pending_buffer.index(term) + 1
                    k = min(k, count)
                    out = bytes(self._pending_buffer[:k])
                    del self._pending_buffer[:k]
                    return out, StatusCode.success_termination_character_read
                if len(self._pending_buffer) >= count:
                    out = bytes(self._pending_buffer[:count])
                    del self._pending_buffer[:count]
                    return out, StatusCode.success_max_count_read
                left = deadline - time.monotonic()
                if left <= 0:
                    out = bytes(self._pending_buffer[:count])
                    del self._pending_buffer[:count]
                    return out, StatusCode.error_timeout
                try:
                    r, _, _ = select.select([self.interface], [], [], min(left, 0.5))
                    if not r:
                        continue
                    data = self.interface.recv(4096)
                except OSError:
                    return b"", StatusCode.error_connection_lost
                if not data:
                    return b"", StatusCode.error_connection_lost
                self._pending_buffer.extend(data)

        def write(self, data: bytes):
            timeout = self.timeout if self.timeout is not None else 2.0
            offset = 0
            while offset < len(data):
                try:
                    _, w, _ = select.select([], [self.interface], [], timeout)
                    if not w:
                        return offset, StatusCode.error_timeout
                    offset += self.interface.send(data[offset:offset + 4096])
                except OSError:
                    return offset, StatusCode.error_connection_lost
            return offset, StatusCode.success

        def clear(self):
            self._pending_buffer.clear()
            end = time.monotonic() + CLEAR_BUDGET
            while time.monotonic() < end:
                try:
                    r, _, _ = select.select([self.interface], [], [], 0.05)
                    if not r:
                        return StatusCode.success
                    if not self.interface.recv(4096):
                        return StatusCode.error_connection_lost
                except OSError:
                    return StatusCode.error_connection_lost
            return StatusCode.success  # an instrument still talking after the budget: give up, bounded

    Session.register(constants.InterfaceType.tcpip, "SOCKET")(BoundedTCPIPSocketSession)
    return BoundedTCPIPSocketSession


def install() -> None:
    """Use the bounded socket session for pyvisa-py ``…::SOCKET`` resources (idempotent)."""
    global _installed
    if _installed:
        return
    try:
        previous = logging.getLogger("pyvisa").level
        logging.getLogger("pyvisa").setLevel(logging.ERROR)  # "already registered ... Overwriting" is expected
        try:
            _bounded_session_class()
        finally:
            logging.getLogger("pyvisa").setLevel(previous)
    except ImportError:  # pyvisa-py not installed: the system VISA handles sockets itself
        return
    _installed = True
