"""Base class of the instrument emulators: message parsing, dispatch, faults.

An emulator receives one complete message (terminator stripped) and returns
the reply text (without terminator) or None when the instrument stays silent.
Commands are declared with SCPI-style patterns::

    @command("[:SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]?")

Upper-case letters are the short form, lower-case the optional rest (SCPI
accepts exactly the short or the long form); ``[...]`` nodes are optional;
``<n>`` captures a numeric suffix.  Matching is case-insensitive.  Several
commands in one message are separated by ``;`` and a leading ``:`` restarts
at the root, as SCPI says.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from sim_instruments.world import World

_NODE = re.compile(r"(\[?)(:?)([A-Za-z*]+)(<n>|\d*)(\]?)")


def _node_regex(name: str, suffix: str) -> str:
    short = "".join(ch for ch in name if not ch.islower())
    rest = name[len(short):].upper()
    rx = re.escape(short.upper()) + (f"(?:{re.escape(rest)})?" if rest else "")
    if suffix == "<n>":
        rx += r"(\d*)"
    elif suffix:
        rx += re.escape(suffix)
    return rx


def compile_pattern(pattern: str) -> re.Pattern:
    query = pattern.endswith("?")
    body = pattern[:-1] if query else pattern
    parts = []
    for opt_open, _colon, name, suffix, opt_close in _NODE.findall(body):
        node = ":?" if not parts else ":"
        node += _node_regex(name, suffix)
        parts.append(f"(?:{node})?" if opt_open else node)
    rx = "^:?" + "".join(parts) + (r"\?" if query else "") + "$"
    return re.compile(rx, re.IGNORECASE)


def command(*patterns: str):
    """Declare a handler method for one or more header patterns."""

    def deco(fn):
        fn._patterns = patterns
        return fn

    return deco


class SCPIError(Exception):
    """Raised by handlers; queued as ``code,"message"`` in the error queue."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class LinkFaults:
    """Faults of the link to one instrument (set by the fault-injection API)."""

    timeout: bool = False  # swallow everything, never reply
    drop: bool = False  # the connection is lost
    garbage: bool = False  # replies replaced by line noise
    overload: bool = False  # measurements report the overload value
    stall: bool = False  # (stage) motion stops where it is
    sensor: bool = False  # (temperature) sensor open
    log: list = field(default_factory=list)


class ConnectionDropped(Exception):
    """The emulated link is down (the transport turns this into a lost connection)."""


class Emulator:
    """One emulated instrument on top of the shared world.

    ``terminators`` are the characters that end a received message on the
    interface in use (from the instrument's manual); anything else, a CR sent
    to an instrument that waits for LF for example, stays in its input buffer
    and the instrument never answers, so the client times out as it would on
    the real one.  ``strip`` characters are ignored at the ends of a message
    (the CR of a CR LF pair).  ``termination`` ends every reply.
    """

    model = "Instrument"
    idn = "SIM,INSTRUMENT,0,1.0"
    termination = "\n"  # what the real instrument ends its replies with
    terminators = "\n"  # what ends a message it receives
    scpi = True  # split messages on ';' with SCPI path rules
    error_queue_depth = 10  # SCPI: the last slot becomes -350 "Queue overflow" when full

    def __init__(self, world: World):
        self.world = world
        self.errors: list[tuple[int, str]] = []
        self.faults = LinkFaults()
        self.last_command = ""
        self.busy = 0.0  # seconds of (virtual) time the current command takes
        self._table: list[tuple[re.Pattern, Callable]] = []
        for name in dir(type(self)):
            fn = getattr(type(self), name)
            for pat in getattr(fn, "_patterns", ()):
                self._table.append((compile_pattern(pat), getattr(self, name)))

    # ----------------------------------------------------------- dispatch
    def handle(self, message: str) -> str | None:
        """Process one message; return the reply (None = no reply)."""
        if self.faults.drop:
            raise ConnectionDropped(self.model)
        self.last_command = message
        if self.faults.timeout:
            return None
        self.busy = 0.0
        with self.world.lock:
            self.world.advance()
            replies = [r for r in (self._one(part) for part in self.split(message)) if r is not None]
        if self.busy:  # time the instrument spent integrating, outside the world lock
            self.world.clock.sleep(self.busy)
        if not replies:
            return None
        reply = ";".join(replies)
        if self.faults.garbage:
            return "".join(chr(int(c)) for c in self.world.rng.integers(33, 126, size=7))
        return reply

    def frame(self, buffer: str) -> tuple[list[str], str]:
        """Cut complete messages out of ``buffer`` at this instrument's terminators;
        return them and the unterminated rest (kept until a terminator arrives)."""
        messages = []
        start = 0
        for k, ch in enumerate(buffer):
            if ch in self.terminators:
                messages.append(buffer[start:k])
                start = k + 1
        return messages, buffer[start:]

    def accept(self, message: str) -> str | None:
        """One framed message from a transport: ignore blank ones, else ``handle``."""
        if not message.strip():
            return None
        return self.handle(message)

    def split(self, message: str) -> list[str]:
        parts = [p.strip() for p in message.split(";")] if self.scpi else [message.strip()]
        out, path = [], ""
        for p in parts:
            if not p:
                continue
            if self.scpi and not p.startswith((":", "*")) and path:
                out.append((path, p))
            else:
                out.append(("", p))
            header = p.split(None, 1)[0].lstrip(":")
            if not header.startswith("*") and ":" in header:
                path = header.rsplit(":", 1)[0]
        return out

    def _one(self, item) -> str | None:
        path, text = item
        header, _, args = text.partition(" ")
        args = args.strip()
        candidates = [f"{path}:{header}", header] if path else [header]
        for cand in candidates:
            for rx, fn in self._table:
                m = rx.match(cand)
                if m:
                    try:
                        return fn(args, *m.groups())
                    except SCPIError as e:
                        self.push_error(e.code, e.message)
                        return None
                    except (ValueError, IndexError):
                        self.push_error(-224, "Illegal parameter value")
                        return None
        self.unknown(text)
        return None

    def unknown(self, text: str) -> None:
        self.push_error(-113, "Undefined header")

    def push_error(self, code: int, message: str) -> None:
        """Queue an error as a SCPI instrument does: first in, first out, at most
        ``error_queue_depth`` entries; when more arrive before the queue is read,
        the last entry becomes -350 "Queue overflow" (the first ones are kept)."""
        if len(self.errors) < self.error_queue_depth:
            self.errors.append((code, message))
        else:
            self.errors[-1] = (-350, "Queue overflow")

    # ------------------------------------------------------ common helpers
    @staticmethod
    def number(args: str) -> float:
        """Parse a numeric parameter, with SCPI's MIN/MAX/DEF spelled out by callers."""
        text = args.strip().split(",")[0].strip()
        if not text:
            raise SCPIError(-109, "Missing parameter")
        try:
            return float(text)
        except ValueError:
            raise SCPIError(-104, "Data type error") from None

    @staticmethod
    def boolean(args: str) -> bool:
        text = args.strip().upper()
        if text in ("1", "ON"):
            return True
        if text in ("0", "OFF"):
            return False
        raise SCPIError(-224, "Illegal parameter value")

    # SCPI mandated commands (overridden by non-SCPI instruments)
    @command("*IDN?")
    def _idn(self, args):
        return self.idn

    @command("*RST")
    def _rst(self, args):
        self.reset()

    @command("*CLS")
    def _cls(self, args):
        self.errors.clear()

    @command("*OPC?")
    def _opc(self, args):
        return "1"

    @command("*ESR?", "*STB?")
    def _status_bytes(self, args):
        return "0"

    @command("*OPC", "*SRE", "*ESE", "*WAI", "*TRG")
    def _ignored(self, args):
        return None

    @command(":SYSTem:ERRor[:NEXT]?")
    def _syst_err(self, args):
        if self.errors:
            code, msg = self.errors.pop(0)
            return f'{code},"{msg}"'
        return '0,"No error"'

    @command(":STATus:QUEue:CLEar")
    def _queue_clear(self, args):
        self.errors.clear()

    @command(":STATus:PRESet")
    def _status_preset(self, args):
        return None

    def reset(self) -> None:
        """*RST: subclasses restore their power-on settings."""

    def snapshot(self) -> dict:
        """Instrument settings, for tests and diagnostics."""
        return {}


class LakeShoreStatus:
    """Lake Shore controllers have no error queue: a command they cannot parse sets
    bit 5 (CME, 32) of the standard event status register, a parameter they cannot
    use bit 4 (EXE, 16); ``*ESR?`` reads and clears it (Model 336 and 425 manuals,
    "Status system")."""

    esr = 0

    def push_error(self, code: int, message: str) -> None:
        self.esr |= 32 if code in (-113, -100, -102) else 16

    def unknown(self, text: str) -> None:
        self.esr |= 32

    @command("*ESR?")
    def _esr(self, args):
        value, self.esr = self.esr, 0
        return str(value)

    @command("*CLS")
    def _cls(self, args):
        self.esr = 0


class TraceBuffer:
    """Keithley reading buffer (:TRACe:POINts / :CLEar); subclasses format :TRACe:DATA?."""

    buffer: list
    buffer_points = 1024

    @command(":TRACe:POINts")
    def tpoints(self, args):
        self.buffer_points = int(self.number(args))

    @command(":TRACe:POINts?")
    def tpoints_q(self, args):
        return str(self.buffer_points)

    @command(":TRACe:CLEar")
    def tclear(self, args):
        self.buffer = []
