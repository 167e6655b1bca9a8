"""When a user's row was last brought up to date from the LDAP directory (issue 18, point 3)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08

One nullable column on users, added alone: nodes on the schema before it keep serving while
this runs (they never read it). Empty for every existing row, so each directory user's next
login reads the directory's attributes as before and sets it.
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("directory_synced_at", sa.DateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("directory_synced_at")
