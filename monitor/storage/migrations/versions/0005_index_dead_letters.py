"""index dead letters: outbox entries the search backend kept rejecting

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import monitor.storage.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'index_dead_letters',
        sa.Column('id', _ID, nullable=False),
        sa.Column('article_id', _ID, nullable=False),
        sa.Column('op', sa.String(length=10), nullable=False),
        sa.Column('queued_at', monitor.storage.models.UTCDateTime(), nullable=False),
        sa.Column('dead_at', monitor.storage.models.UTCDateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_index_dead_letters_article_id', 'index_dead_letters', ['article_id'])


def downgrade() -> None:
    op.drop_index('ix_index_dead_letters_article_id', table_name='index_dead_letters')
    op.drop_table('index_dead_letters')
