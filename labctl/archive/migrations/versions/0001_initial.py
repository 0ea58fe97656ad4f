"""The first archive schema: runs, rows, files, stations.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "runs",
        sa.Column("station", sa.Text, primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
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
        sa.Column("parameters", sa.Text),
        sa.Column("provenance", sa.Text),
        sa.Column("columns", sa.Text),
        sa.Column("rows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("synced", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_index("runs_started", "runs", ["started"])
    op.create_index("runs_parent", "runs", ["station", "parent"])
    op.create_table(
        "rows",
        sa.Column("station", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "files",
        sa.Column("station", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.Text),
    )
    op.create_table(
        "stations",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("url", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("updated", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def downgrade():
    for table in ("stations", "files", "rows", "runs"):
        op.drop_table(table)
