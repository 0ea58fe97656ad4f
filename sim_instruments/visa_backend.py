"""In-process transport: a pyvisa ``VisaLibraryBase`` whose resources are the
virtual lab's emulators.  Pass it as ``visa_library`` to pyvisa or pymeasure;
the stock drivers then talk to the lab through pyvisa's normal message layer,
terminations and time-outs included.

Termination behaviour follows the interface: SOCKET and ASRL resources end a
read only at the termination character (a wrong ``read_termination`` times
out, as on real hardware); GPIB/INSTR resources also signal END after the
last byte.  Writes are framed by each emulator's own terminators (see
``Emulator.frame``): a wrong ``write_termination`` times out too.
"""
from __future__ import annotations

import itertools
from typing import Any

from pyvisa import attributes, constants, errors, highlevel, rname
from pyvisa.util import LibraryPath

from sim_instruments.emulator import ConnectionDropped, Emulator

_counter = itertools.count(1)


class _Session:
    def __init__(self, name: str, parsed, emulator: Emulator):
        self.emulator = emulator
        self.parsed = parsed
        self.inbuf = ""
        self.outbuf = b""
        self.attrs: dict[Any, Any] = {
            constants.ResourceAttribute.resource_name: name,
            constants.ResourceAttribute.resource_class: parsed.resource_class,
            constants.ResourceAttribute.interface_type: parsed.interface_type_const,
        }
        self.trace = None  # callable(message, reply) for the server-side I/O trace
        self.end_on_eoi = parsed.resource_class == "INSTR" and parsed.interface_type_const != constants.InterfaceType.asrl

    def attr(self, attribute):
        if attribute in self.attrs:
            return self.attrs[attribute]
        info = attributes.AttributesByID.get(attribute)
        return info.default if info is not None else None

    def write(self, data: bytes) -> tuple[int, constants.StatusCode]:
        self.inbuf += data.decode("latin-1")
        # only the instrument's own terminators end a message (a wrong write
        # termination leaves it waiting, and the client's read times out)
        messages, self.inbuf = self.emulator.frame(self.inbuf)
        for message in messages:
            try:
                reply = self.emulator.accept(message)
            except ConnectionDropped:
                return 0, constants.StatusCode.error_connection_lost
            if self.trace is not None:
                self.trace(message, reply)
            if reply is not None:
                self.outbuf += (reply + self.emulator.termination).encode("latin-1")
        if self.emulator.faults.drop:
            return 0, constants.StatusCode.error_connection_lost
        return len(data), constants.StatusCode.success

    def read(self, count: int) -> tuple[bytes, constants.StatusCode]:
        if self.emulator.faults.drop:
            return b"", constants.StatusCode.error_connection_lost
        if not self.outbuf:
            return b"", constants.StatusCode.error_timeout
        term_on = self.attr(constants.ResourceAttribute.termchar_enabled)
        term = bytes([self.attr(constants.ResourceAttribute.termchar) or 10])
        if term_on:
            k = self.outbuf.find(term)
            if 0 <= k < count:
                out, self.outbuf = self.outbuf[:k + 1], self.outbuf[k + 1:]
                return out, constants.StatusCode.success_termination_character_read
        if len(self.outbuf) > count:
            out, self.outbuf = self.outbuf[:count], self.outbuf[count:]
            return out, constants.StatusCode.success_max_count_read
        if self.end_on_eoi or not term_on:
            out, self.outbuf = self.outbuf, b""
            return out, constants.StatusCode.success
        self.outbuf = b""  # the bytes arrived but the terminator never does
        return b"", constants.StatusCode.error_timeout


class SimVisaLibrary(highlevel.VisaLibraryBase):
    """VISA library backed by a VirtualLab (one library object per lab)."""

    lab = None

    @classmethod
    def for_lab(cls, lab) -> "SimVisaLibrary":
        lib = cls(f"labctl-virtual-lab-{next(_counter)}")
        lib.lab = lab
        return lib

    @staticmethod
    def get_library_paths():
        return (LibraryPath("labctl-virtual-lab"),)

    @staticmethod
    def get_debug_info():
        return {"backend": "labctl virtual lab (in-process)"}

    def _init(self) -> None:
        self.sessions: dict[int, Any] = {}
        self._handles = itertools.count(1000)

    def _register(self, obj) -> int:
        handle = next(self._handles)
        self.sessions[handle] = obj
        return handle

    def open_default_resource_manager(self):
        return self._register(self), constants.StatusCode.success

    def list_resources(self, session, query: str = "?*::INSTR"):
        names = tuple(self.lab.resources) if self.lab else ()
        return tuple(rname.filter(names, query)) if query not in ("?*::INSTR",) else names

    def parse_resource(self, session, resource_name):
        return self.parse_resource_extended(session, resource_name)

    def parse_resource_extended(self, session, resource_name):
        try:
            parsed = rname.parse_resource_name(resource_name)
        except rname.InvalidResourceName:
            return None, constants.StatusCode.error_invalid_resource_name
        from pyvisa.highlevel import ResourceInfo

        return (ResourceInfo(parsed.interface_type_const, parsed.board, parsed.resource_class,
                             str(parsed), None), constants.StatusCode.success)

    def open(self, session, resource_name, access_mode=constants.AccessModes.no_lock,
             open_timeout=constants.VI_TMO_IMMEDIATE):
        try:
            parsed = rname.parse_resource_name(resource_name)
        except rname.InvalidResourceName:
            raise errors.VisaIOError(constants.StatusCode.error_invalid_resource_name) from None
        emulator = self.lab.by_resource(str(parsed)) if self.lab else None
        if emulator is None:  # nothing at that address in the virtual lab
            raise errors.VisaIOError(constants.StatusCode.error_resource_not_found)
        return self._register(_Session(str(parsed), parsed, emulator)), constants.StatusCode.success

    def close(self, session):
        self.sessions.pop(session, None)
        return constants.StatusCode.success

    def _session(self, session) -> _Session:
        sess = self.sessions.get(session)
        if not isinstance(sess, _Session):
            raise errors.VisaIOError(constants.StatusCode.error_invalid_object)
        return sess

    def read(self, session, count):
        data, status = self._session(session).read(count)
        if status < 0:
            raise errors.VisaIOError(status)
        return data, status

    def write(self, session, data):
        n, status = self._session(session).write(data)
        if status < 0:
            raise errors.VisaIOError(status)
        return n, status

    def get_attribute(self, session, attribute):
        sess = self.sessions.get(session)
        if isinstance(sess, _Session):
            return sess.attr(attribute), constants.StatusCode.success
        return 0, constants.StatusCode.success

    def set_attribute(self, session, attribute, attribute_state):
        sess = self.sessions.get(session)
        if isinstance(sess, _Session):
            sess.attrs[attribute] = attribute_state
        return constants.StatusCode.success

    def clear(self, session):
        sess = self._session(session)
        sess.inbuf, sess.outbuf = "", b""
        return constants.StatusCode.success

    def flush(self, session, mask):
        return constants.StatusCode.success

    def read_stb(self, session):
        return 0, constants.StatusCode.success

    def assert_trigger(self, session, protocol):
        return constants.StatusCode.success

    def lock(self, session, lock_type, timeout, requested_key=None):
        return "", constants.StatusCode.success

    def unlock(self, session):
        return constants.StatusCode.success

    def disable_event(self, session, event_type, mechanism):
        return constants.StatusCode.success

    def discard_events(self, session, event_type, mechanism):
        return constants.StatusCode.success
