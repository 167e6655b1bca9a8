"""radius clients and challenge states

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "radius_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("delimiter", sa.String(length=4), nullable=False),
        sa.Column("require_message_authenticator", sa.Boolean(), nullable=False),
        sa.Column("fail_mode", sa.String(length=8), nullable=False),
        sa.Column("push_timeout", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_radius_clients_name"),
        sa.UniqueConstraint("network", name="uq_radius_clients_network"),
    )
    op.create_table(
        "radius_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state_hash", name="uq_radius_challenges_state_hash"),
    )
    with op.batch_alter_table("radius_challenges", schema=None) as batch_op:
        batch_op.create_index("ix_radius_challenges_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_radius_challenges_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("radius_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_radius_challenges_expires_at")
        batch_op.drop_index("ix_radius_challenges_user_id")
    op.drop_table("radius_challenges")
    op.drop_table("radius_clients")
