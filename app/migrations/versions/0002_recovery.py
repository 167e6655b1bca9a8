"""recovery portal: flows and failure guards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recovery_flows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('identity_ok', sa.Boolean(), nullable=False),
    sa.Column('identity_detail', sa.String(length=120), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('recovery_flows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_flows_expires_at'), ['expires_at'],
                              unique=False)

    op.create_table('recovery_guards',
    sa.Column('subject', sa.LargeBinary(length=32), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('subject')
    )


def downgrade() -> None:
    op.drop_table('recovery_guards')
    with op.batch_alter_table('recovery_flows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_flows_expires_at'))
    op.drop_table('recovery_flows')
