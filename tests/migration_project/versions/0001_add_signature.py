"""Add features.signature (the incident's migration).

With MIGRATION_FAIL=1 it fails on a SQL error instead, for the test of a failure that is not a
lock failure.

Revision ID: 0001
"""

import os

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    if os.environ.get("MIGRATION_FAIL"):
        op.execute("SELECT no_such_column FROM features")
    op.add_column("features", sa.Column("signature", sa.Text()))


def downgrade():
    op.drop_column("features", "signature")
