"""IdP-proxy: upstream assertions already used (replay refusal across nodes)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_assertions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assertion_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("assertion_hash"),
    )
    with op.batch_alter_table("upstream_assertions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upstream_assertions_expires_at"), ["expires_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upstream_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upstream_assertions_expires_at"))
    op.drop_table("upstream_assertions")
