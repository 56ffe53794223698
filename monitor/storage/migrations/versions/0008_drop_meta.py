"""drop the unused meta table (nothing ever read or wrote it)

Revision ID: 0008
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('meta')


def downgrade() -> None:
    op.create_table('meta',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
