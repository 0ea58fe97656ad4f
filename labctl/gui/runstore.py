"""Run-folder actions of the browser that change the data home: notes on a run and deleting a run.

Notes go to the catalog and to ``notes.txt`` in the run folder.  Deleting never destroys
data: the run folder is moved to ``<data home>/.trash/`` and only its catalog rows are removed.
"""
from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from labctl.catalog import Catalog


def save_notes(data_dir: str | Path, entry: dict, text: str) -> Path | None:
    """Notes on a run: the catalog's ``notes`` column and ``notes.txt`` in the run folder."""
    Catalog(data_dir).set_notes(entry["id"], text)
    path = entry.get("path")
    if path and Path(path).is_dir():
        f = Path(path) / "notes.txt"
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        f.write_text(f"# notes on run {entry['id']} (edited {stamp})\n{text}\n", encoding="utf-8")
        return f
    return None


def delete_run(data_dir: str | Path, entry: dict) -> Path | None:
    """Move the run folder to ``.trash`` and remove the run and its steps from the catalog."""
    data_dir = Path(data_dir)
    moved = None
    path = Path(entry.get("path") or "")
    if entry.get("path") and path.exists():
        trash = data_dir / ".trash"
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / path.name
        k = 2
        while target.exists():
            target = trash / f"{path.name}.{k}"
            k += 1
        moved = Path(shutil.move(str(path), str(target)))
    Catalog(data_dir).forget(entry["id"])
    return moved
