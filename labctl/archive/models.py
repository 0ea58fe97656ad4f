"""The archive's tables (SQLAlchemy Core).  The schema itself is created and changed
only by the Alembic migrations in ``migrations/versions``; this module mirrors it for
queries.  Runs are keyed by (station, id): run ids are unique per station's data home,
station names are unique in a lab."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("station", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),       # run id, or "<run id>/<step>" for a step
    sa.Column("parent", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("started", sa.Text),
    sa.Column("ended", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("sim", sa.Boolean),
    sa.Column("sample", sa.Text),
    sa.Column("operator", sa.Text),
    sa.Column("notes", sa.Text),
    sa.Column("host", sa.Text),
    sa.Column("path", sa.Text),
    sa.Column("checksum", sa.Text),
    sa.Column("parameters", sa.Text),                  # JSON text, as in the local catalog
    sa.Column("provenance", sa.Text),
    sa.Column("columns", sa.Text),                     # JSON list of the step's column names
    sa.Column("rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("synced", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

rows = sa.Table(
    "rows", metadata,
    sa.Column("station", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.Text, nullable=False),        # JSON list of values, in runs.columns order
)

files = sa.Table(
    "files", metadata,
    sa.Column("station", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.Text),
)

stations = sa.Table(
    "stations", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("url", sa.Text),
    sa.Column("state", sa.Text),                       # JSON: the service's /api/status
    sa.Column("updated", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
