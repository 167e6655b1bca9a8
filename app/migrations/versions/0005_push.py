"""push: companion app keys, activation codes, push requests, device API nonces

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("push_blocked_until", sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("push_subscription", sa.Text(), nullable=True))
    op.create_table(
        "activation_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("activation_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activation_codes_device_id"), ["device_id"],
                              unique=False)
    op.create_table(
        "push_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=8), nullable=False),
        sa.Column("door", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("client_addr", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer_signature", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("push_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_push_requests_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_push_requests_device_id"), ["device_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_push_requests_status"), ["status"], unique=False)
    op.create_table(
        "device_nonces",
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("device_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_nonces_expires_at"), ["expires_at"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("device_nonces")
    op.drop_table("push_requests")
    op.drop_table("activation_codes")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("push_subscription")
        batch_op.drop_column("public_key")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("push_blocked_until")
