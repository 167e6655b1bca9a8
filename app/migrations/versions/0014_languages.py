"""Languages: the user's chosen language and each RADIUS client's Reply-Message language

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Both columns are nullable and added alone, so nodes keep serving while this runs (or is undone):
a login never reads users.language (app/core/preferences.py reads it where it is used, and
gets None while the column is missing), and the RADIUS server keeps the clients it has when a
reload fails.
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    with op.batch_alter_table("radius_clients") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("radius_clients") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
