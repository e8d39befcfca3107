"""Initial schema: meetings, prds, tasks (the same SQL as migrations/0001).

Revision ID: 0001
Revises:
"""
import os

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The SQL lives in one place: pgentry's migration files next to this project, or, in an image,
# wherever PGENTRY_MIGRATIONS points.
HERE = os.path.dirname(os.path.abspath(__file__))
SQL_DIR = os.environ.get(
    "PGENTRY_MIGRATIONS", os.path.join(HERE, "..", "..", "..", "migrations"))


def _sql(name):
    with open(os.path.join(SQL_DIR, name), encoding="utf-8") as f:
        return f.read()


def upgrade():
    op.execute(_sql("0001_initial_schema.up.sql"))


def downgrade():
    op.execute(_sql("0001_initial_schema.down.sql"))
