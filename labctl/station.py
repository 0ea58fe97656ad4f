"""The station: drivers for each role, built from a station file, plus the clock.

Sim versus real is only the station's ``backend``: "sim" builds the virtual lab
in-process and hands its VISA library to the same stock drivers that talk to
real hardware.  Using a station as a context manager guarantees the safe
shutdown (current ramped to zero, output off) on every exit path.
"""
from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from labctl.clock import Clock, WallClock, make_clock
from labctl.config import ROLES, StationConfig, load_station
from labctl.errors import InstrumentError
from labctl.iotrace import station_trace
from labctl.lock import StationLock
from labctl.transport import install as install_bounded_sockets
from labctl.roles import ROLE_CLASSES, CurrentSource, Gaussmeter, Stage, TemperatureController, Voltmeter

log = logging.getLogger("labctl.station")


class Station:
    """Connected roles over one station configuration."""

    def __init__(self, config: StationConfig, lab=None):
        self.config = config
        self.lab = lab
        if config.is_sim and self.lab is None:
            from sim_instruments.lab import VirtualLab

            sim = config.sim
            self.lab = VirtualLab(sample=sim.sample, field_model=sim.field_model, temperature=sim.temperature,
                                  speedup=sim.speedup, seed=sim.seed)
        self.clock: Clock = self.lab.clock if self.lab is not None else (
            make_clock(config.station.speedup) if config.station.speedup else WallClock())
        self.roles: dict[str, object] = {}
        self.errors: dict[str, InstrumentError] = {}
        self.prepared = False  # run-start configuration done on this connection
        self.lock: StationLock | None = None  # held while connected (one owner per station)
        self.shutting_down = False  # the guard's watch stays out of the shutdown ramp

    @classmethod
    def from_file(cls, path: str | Path | None = None, **overrides) -> "Station":
        return cls(load_station(path, sim_overrides=overrides))

    @property
    def is_sim(self) -> bool:
        return self.lab is not None

    # ------------------------------------------------------------ building
    def _visa_library(self):
        return self.lab.visa_library if self.config.is_sim else self.config.station.backend

    def _open(self, role: str):
        """Open one role's driver (a new connection each call)."""
        from drivers import DRIVERS

        rc = getattr(self.config, role)
        kwargs = {"timeout": rc.timeout}
        if rc.read_termination is not None:
            kwargs["read_termination"] = rc.read_termination
        if rc.write_termination is not None:
            kwargs["write_termination"] = rc.write_termination
        kwargs.update(rc.options)
        if not self.config.is_sim:
            install_bounded_sockets()  # a closed LAN link is an error at once, never a hang
        trace = station_trace(self)  # issue 12: I/O trace, when the station file or the CLI asks
        try:
            instrument = DRIVERS[rc.driver](rc.address, visa_library=self._visa_library(), **kwargs)
            if trace is not None:
                trace.opened(role, rc, instrument)
            return instrument
        except Exception as e:
            if trace is not None:
                trace.record(role, "!", f"open {rc.address} ({rc.driver}) failed: {type(e).__name__}: {e}")
            sent = "ADR" if rc.driver == "genesys" else "(open)"
            raise InstrumentError(
                f"{role}: cannot open {rc.address} with driver {rc.driver} "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}); sent {sent}; "
                f"terminations read={rc.read_termination!r} write={rc.write_termination!r}, timeout {rc.timeout} ms",
                role=role, address=rc.address, last_command=sent) from e

    def connect_role(self, role: str, setup: bool = False):
        """Open one role's driver; raise InstrumentError with the diagnostics on failure.

        Connecting only queries: nothing that changes an instrument is sent here.
        ``setup=True`` also runs the role's run-start configuration (see ``prepare``)."""
        rc = getattr(self.config, role)
        role_cls = ROLE_CLASSES[rc.driver]
        instrument = self._open(role)
        obj = role_cls(rc, instrument, self.clock, name=role)
        obj.retries, obj.retry_backoff = self.config.station.retries, self.config.station.retry_backoff
        obj.reopen = lambda: self._open(role)  # a fresh connection, for the emergency ramp-down
        if role == "current_source":
            obj.learn_state()  # queries only: the level the supply delivers now
        if setup:
            obj.setup()
        self.roles[role] = obj
        return obj

    def acquire(self) -> None:
        """Become the station's one owner (real instruments or a served virtual lab);
        StationBusy names the holder.  The in-process virtual lab is private: no lock."""
        if self.config.is_sim or (self.lock is not None and self.lock.held):
            return
        addresses = [getattr(self.config, r).address for r in ROLES]
        self.lock = StationLock(self.config.station.backend, addresses, self.config.station.name).acquire()

    def connect(self, setup: bool = False, tolerant: bool = False) -> "Station":
        """Connect every role (queries only).  ``tolerant`` records failures in ``errors``
        instead of raising; ``setup`` also runs ``prepare()``."""
        self.acquire()
        for role in ROLES:
            try:
                self.connect_role(role)
            except InstrumentError as e:
                if not tolerant:
                    self.close()
                    raise
                self.errors[role] = e
        if setup:
            self.prepare()
        return self

    # Run-start configuration, in this order: the current source first (a non-zero output
    # is ramped down at the configured rate, never stepped), then the instruments that
    # only measure, then the temperature controller (setpoint = present temperature
    # before the heater is enabled), and the stage last (home search, then soft limits).
    PREPARE_ORDER = ("current_source", "voltmeter", "gaussmeter", "temperature", "stage")

    def prepare(self, force: bool = False) -> None:
        """Put every connected instrument in the state the procedures assume (run start
        only; once per connection unless ``force``)."""
        if self.prepared and not force:
            return
        self.prepared = True
        for role in self.PREPARE_ORDER:
            if role in self.roles:
                log.info("run start: configuring %s", role)
                self.roles[role].setup()

    # --------------------------------------------------------------- roles
    @property
    def current_source(self) -> CurrentSource:
        return self.roles["current_source"]

    @property
    def voltmeter(self) -> Voltmeter:
        return self.roles["voltmeter"]

    @property
    def temperature(self) -> TemperatureController:
        return self.roles["temperature"]

    @property
    def gaussmeter(self) -> Gaussmeter:
        return self.roles["gaussmeter"]

    @property
    def stage(self) -> Stage:
        return self.roles["stage"]

    # ------------------------------------------------------------ snapshot
    def snapshot(self) -> dict:
        """Configuration plus each instrument's identity and state (QCoDeS-style)."""
        snap = {"config": self.config.model_dump(mode="json"), "sim": None, "instruments": {}}
        if self.lab is not None:
            snap["sim"] = self.lab.world.describe()
        for name, role in self.roles.items():
            entry = {"driver": role.config.driver, "address": role.address}
            try:
                entry["identity"] = role.identity()
                entry["state"] = role.state()
            except InstrumentError as e:
                entry["error"] = str(e)
            snap["instruments"][name] = entry
        return snap

    # ------------------------------------------------------------ shutdown
    def safe_shutdown(self, reason: str = "end of run", emergency: bool = False) -> list[str]:
        """Current to zero and output off first, then stop the stage.  Returns the actions."""
        actions = []
        danger = None
        cs = self.roles.get("current_source")
        nested, self.shutting_down = self.shutting_down, True
        if cs is not None:
            try:
                actions += cs.safe_shutdown(emergency=emergency)
            except InstrumentError as e:  # still stop the stage, then report the supply loudly
                danger = e
            finally:
                self.shutting_down = nested
        stage = self.roles.get("stage")
        if stage is not None:
            try:
                actions += stage.safe_shutdown()
            except InstrumentError as e:
                actions.append(f"stage: could not stop ({e})")
        for a in actions:
            log.info("safe shutdown (%s): %s", reason, a)
        if danger is not None:
            raise danger
        return actions

    def close(self) -> None:
        for role in self.roles.values():
            try:
                role.instrument.adapter.close()
            except Exception:
                pass
        self.roles.clear()
        self.prepared = False
        if self.lock is not None:
            self.lock.release()

    @contextmanager
    def session(self, reason: str = "end of run"):
        """Connected station whose exit (normal, exception, Ctrl-C, SIGTERM) is always safe."""
        if not self.roles:
            self.connect()
        with _sigterm_as_interrupt():
            self.prepare()
            try:
                yield self
            finally:
                try:
                    self.safe_shutdown(reason)
                finally:
                    self.close()

    def __enter__(self) -> "Station":
        self._cm = self.session()
        return self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


TERMINATING_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM and SIGHUP (terminal closed, SSH dropped) into KeyboardInterrupt in the
    main thread so ``finally`` runs the safe shutdown.  A handler the caller installed
    (the CLI's, which records an abort) is left in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {}
    for sig in TERMINATING_SIGNALS:
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
