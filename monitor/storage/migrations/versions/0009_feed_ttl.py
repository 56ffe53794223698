"""feeds.ttl_minutes: the feed's own <ttl>, kept so a 304 answer still honours it

Revision ID: 0009
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("ttl_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("ttl_minutes")
