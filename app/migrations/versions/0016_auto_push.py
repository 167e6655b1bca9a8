"""Automatically send me a push: the user's setting (issue 17, point 5)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

One nullable column on users, false by default, added alone: nodes keep serving while this runs
(or is undone). A login never loads users.auto_push with the user (the column is deferred);
app/core/preferences.py reads it in a savepoint and takes a missing column as "off", so a node
on a schema without it signs people in as before, with "Send me a Push" a click away.
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("auto_push", sa.Boolean(), nullable=True,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("auto_push")
