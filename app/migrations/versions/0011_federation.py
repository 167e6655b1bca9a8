"""SAML federations: users' given name and surname; what each SP asks for and receives
(requested attributes, entity categories, release policy, encryption); metadata aggregates

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("given_name", sa.String(length=100), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("surname", sa.String(length=100), nullable=False,
                                      server_default=""))
    op.create_table(
        "metadata_aggregates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_refresh_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("url"),
    )
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        for name in ("requested_attributes", "entity_categories", "encryption_certs",
                     "encryption_methods"):
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("subject_id_req", sa.String(length=32), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("release", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("encrypt_assertions", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        # SPs registered before this revision were given the email NameID when they asked.
        batch_op.add_column(sa.Column("allow_email_nameid", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column("aggregate_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_service_providers_aggregate_id"), ["aggregate_id"],
                              unique=False)
        batch_op.create_foreign_key("fk_service_providers_aggregate_id", "metadata_aggregates",
                                    ["aggregate_id"], ["id"], ondelete="CASCADE")
    # SPs registered before the release policy keep what they always received (an operator can
    # move one to the default policy: `um2fa sp set ID --default-release`).
    op.execute("UPDATE service_providers SET release = "
               "'[\"eduPersonPrincipalName\", \"eduPersonAffiliation\", \"mail\", "
               "\"displayName\", \"uid\"]'")
    # The default true above was for the SPs already there; an SP registered from now on gets
    # no email NameID unless an operator allows it (as the model's default says).
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        batch_op.alter_column("allow_email_nameid", existing_type=sa.Boolean(),
                              existing_nullable=False, server_default=sa.false())


def downgrade() -> None:
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_service_providers_aggregate_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_service_providers_aggregate_id"))
        for name in ("aggregate_id", "allow_email_nameid", "encrypt_assertions", "release",
                     "subject_id_req", "encryption_methods", "encryption_certs",
                     "entity_categories", "requested_attributes"):
            batch_op.drop_column(name)
    op.drop_table("metadata_aggregates")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("surname")
        batch_op.drop_column("given_name")
