"""VPN door: failure counters (password guessing, push fatigue) and the Verified Push a
challenge State waits for

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempt_counters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("attempt_counters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempt_counters_expires_at"), ["expires_at"],
                              unique=False)
    with op.batch_alter_table("radius_challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("push_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("radius_challenges", schema=None) as batch_op:
        batch_op.drop_column("push_id")
    with op.batch_alter_table("attempt_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempt_counters_expires_at"))
    op.drop_table("attempt_counters")
