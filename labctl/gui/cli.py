"""``labctl gui [--station FILE]``: the PyQt6 window (virtual lab by default)."""
from __future__ import annotations

import os
import sys

from labctl.errors import ConfigError


def _speedup(text: str):
    if text.lower() in ("max", "inf"):
        return "max"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number or 'max'") from None
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def make_station(station_file=None, sample=None, field_model=None, seed=None, speedup=None):
    """The station the window drives: a station file, or the built-in in-process virtual lab."""
    from labctl.config import load_station
    from labctl.station import Station

    overrides = {"sample": sample, "field_model": field_model, "seed": seed, "speedup": speedup}
    config = load_station(station_file, sim_overrides={k: v for k, v in overrides.items() if v is not None})
    return Station(config)


def _gui(args) -> int:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        raise ConfigError("no display: set DISPLAY (e.g. run under xvfb-run) or QT_QPA_PLATFORM=offscreen")
    import logging

    logging.getLogger("pymeasure.display.listeners").setLevel(logging.ERROR)  # "ZMQ ... required": not used
    from labctl.gui.app import run

    station = make_station(args.station, args.sample, args.field_model, args.seed, args.speedup)
    return run(station, data_dir=args.data_dir)


def register(sub) -> None:
    from labctl.cli_params import sample_preset
    from labctl.materials import PRESETS
    from labctl.physics import FIELD_MODELS

    gui = sub.add_parser("gui", help="the graphical interface: station, protocol, live plots, run browser")
    gui.add_argument("--station", help="station TOML (default: the built-in virtual lab, in-process)")
    gui.add_argument("--data-dir", help="where run folders go (default: the station file's data_dir, else "
                                       "$LABCTL_DATA, else the per-user data folder)")
    gui.add_argument("--sample", type=sample_preset, choices=list(PRESETS), help="virtual lab only: sample preset")
    gui.add_argument("--field-model", choices=list(FIELD_MODELS), help="virtual lab only: hidden truth")
    gui.add_argument("--seed", type=int, help="virtual lab only: noise seed")
    gui.add_argument("--speedup", type=_speedup,
                     help="virtual lab only: clock speed-up, e.g. 100 to watch runs, or 'max' (the default)")
    gui.set_defaults(func=_gui)
