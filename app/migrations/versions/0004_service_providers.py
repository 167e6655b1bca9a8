"""SAML service providers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("acs_urls", sa.Text(), nullable=False),
        sa.Column("slo_url", sa.String(length=1024), nullable=False),
        sa.Column("certs", sa.Text(), nullable=False),
        sa.Column("sign_requests", sa.Boolean(), nullable=False),
        sa.Column("nameid_formats", sa.Text(), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entity_id"),
    )


def downgrade() -> None:
    op.drop_table("service_providers")
