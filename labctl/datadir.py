"""The data home: where run folders and the catalog live, resolved the same way
from any folder and by every command (run, runs, resume, analyze, report,
replay, gui).

In this order, the first that is given wins:

1. ``--data-dir DIR`` on the command line (a relative DIR is relative to the
   current folder, as a shell user expects);
2. ``data_dir`` in the ``[station]`` table of the station file given with
   ``--station``; a relative path is relative to the station file's folder (so
   ``data_dir = "data/runs"`` in ``~/cryo/lab.toml`` is ``~/cryo/data/runs``
   whatever folder labctl is started from).  The station files shipped inside
   labctl (``labctl/stations/``, the built-in virtual lab) do not choose a data
   home;
3. the ``LABCTL_DATA`` environment variable;
4. the per-user data folder of the platform (platformdirs): ``runs`` under
   ``~/.local/share/labctl`` on Linux, ``~/Library/Application Support/labctl``
   on macOS, ``%LOCALAPPDATA%\\labctl`` on Windows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV = "LABCTL_DATA"


@dataclass(frozen=True)
class DataHome:
    path: Path
    source: str  # how it was chosen, for messages: "--data-dir", "station file ...", "LABCTL_DATA", "per-user"

    def __str__(self) -> str:
        return str(self.path)

    def describe(self) -> str:
        return f"{self.path} ({self.source})"


def user_data_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("labctl", appauthor=False)) / "runs"


def _builtin(source_path: str) -> bool:
    from labctl.config import STATIONS_DIR

    if not source_path:
        return True
    try:
        return Path(source_path).resolve().parent == STATIONS_DIR.resolve()
    except OSError:
        return False


def from_station(config) -> DataHome | None:
    """The data home a station file names explicitly, or None."""
    if config is None:
        return None
    meta = config.station
    if "data_dir" not in meta.model_fields_set or _builtin(config.source_path):
        return None
    path = Path(meta.data_dir).expanduser()
    if not path.is_absolute():
        path = Path(config.source_path).resolve().parent / path
    return DataHome(path, f"data_dir of station file {config.source_path}")


def resolve(cli: str | Path | None = None, config=None, station_file: str | Path | None = None) -> DataHome:
    """The data home (see the module docstring).  ``config`` is a loaded StationConfig;
    ``station_file`` is loaded when no config is given."""
    if cli:
        return DataHome(Path(cli).expanduser().absolute(), "--data-dir")
    if config is None and station_file:
        from labctl.config import load_station

        config = load_station(station_file)
    home = from_station(config)
    if home is not None:
        return home
    env = os.environ.get(ENV, "").strip()
    if env:
        return DataHome(Path(env).expanduser().absolute(), f"{ENV}")
    return DataHome(user_data_home(), "per-user data folder; set LABCTL_DATA or --data-dir to change")


def find_run(run: str | Path, home: DataHome) -> Path | None:
    """A run folder or data file path, a run id in the data home, or 'latest' (the newest run)."""
    path = Path(run)
    if path.exists():
        return path
    base = home.path
    if str(run) == "latest" and base.is_dir():
        runs = [p for p in base.iterdir() if (p / "parameters.json").is_file()]
        if runs:
            return max(runs, key=lambda p: ((p / "parameters.json").stat().st_mtime, p.name))
        return None
    if (base / str(run)).exists():
        return base / str(run)
    return None
