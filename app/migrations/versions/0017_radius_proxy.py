"""RADIUS proxies: a client marked as a proxy (FreeRADIUS in front of several NAS) and the
policies of the NAS behind it; a challenge State bound to "proxy/nas policy"

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

A new table, a boolean column with a server default (false: every existing client stays what
it was) and a wider radius_challenges.client_name. Nodes on the schema before it keep serving
while this runs: they never read the new table or column. Going down deletes the challenge
States whose client name no longer fits (they live five minutes).
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("radius_clients") as batch:
        batch.add_column(sa.Column("proxy", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "radius_nas_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("nas_identifier", sa.String(length=64), nullable=True),
        sa.Column("nas_network", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("fail_mode", sa.String(length=8), nullable=True),
        sa.Column("push_timeout", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["radius_clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "name"),
    )
    with op.batch_alter_table("radius_nas_policies") as batch:
        batch.create_index(batch.f("ix_radius_nas_policies_client_id"), ["client_id"],
                           unique=False)
    with op.batch_alter_table("radius_challenges") as batch:
        batch.alter_column("client_name", existing_type=sa.String(length=64),
                           type_=sa.String(length=140), existing_nullable=False)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM radius_challenges WHERE length(client_name) > 64"))
    with op.batch_alter_table("radius_challenges") as batch:
        batch.alter_column("client_name", existing_type=sa.String(length=140),
                           type_=sa.String(length=64), existing_nullable=False)
    with op.batch_alter_table("radius_nas_policies") as batch:
        batch.drop_index(batch.f("ix_radius_nas_policies_client_id"))
    op.drop_table("radius_nas_policies")
    with op.batch_alter_table("radius_clients") as batch:
        batch.drop_column("proxy")
