"""Lockouts that lift with backoff; recovery locks per ID and address; "enrolled before"

users.locked_until / lockout_level: when a second-factor lockout lifts, and how many locks in a
row (the backoff). A lockout already in place lifts 15 minutes after it began (the default
UM2FA_LOCKOUT_SECONDS). recovery_guards.level: the same backoff for the recovery portal's lock.
users.enrolled_at: when the user first had an active device, set for users who have one now
(the earliest device's creation time), so that removing every device does not make them "new".

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FIRST_LOCK = timedelta(seconds=900)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("lockout_level", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("enrolled_at", sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("recovery_guards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("level", sa.Integer(), nullable=False,
                                      server_default="0"))

    users = sa.table("users", sa.column("id", sa.Integer()),
                     sa.column("locked_at", sa.DateTime(timezone=True)),
                     sa.column("locked_until", sa.DateTime(timezone=True)),
                     sa.column("lockout_level", sa.Integer()),
                     sa.column("enrolled_at", sa.DateTime(timezone=True)))
    devices = sa.table("devices", sa.column("user_id", sa.Integer()),
                       sa.column("active", sa.Boolean()),
                       sa.column("created_at", sa.DateTime(timezone=True)))
    conn = op.get_bind()
    # Existing lockouts lift like new first locks: 15 minutes after they began.
    for user_id, locked_at in conn.execute(
            sa.select(users.c.id, users.c.locked_at).where(users.c.locked_at.is_not(None))):
        conn.execute(users.update().where(users.c.id == user_id)
                     .values(locked_until=locked_at + FIRST_LOCK, lockout_level=1))
    # Users who have a device now have enrolled.
    first_device = (sa.select(sa.func.min(devices.c.created_at))
                    .where(devices.c.user_id == users.c.id, devices.c.active.is_(True))
                    .scalar_subquery())
    conn.execute(users.update().where(users.c.enrolled_at.is_(None),
                                      sa.exists().where(devices.c.user_id == users.c.id,
                                                        devices.c.active.is_(True)))
                 .values(enrolled_at=first_device))


def downgrade() -> None:
    with op.batch_alter_table("recovery_guards", schema=None) as batch_op:
        batch_op.drop_column("level")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("enrolled_at")
        batch_op.drop_column("lockout_level")
        batch_op.drop_column("locked_until")
