"""topic explanations and retag checkpoints

Revision ID: 0002
Revises: 0005
Create Date: 2026-12-02 18:40:00
"""
from alembic import op
import sqlalchemy as sa
import monitor.storage.models


revision = '0002'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('article_topics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('explanation', sa.JSON(), nullable=True))

    op.create_table('retag_checkpoints',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('last_article_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('skipped_newer', sa.Integer(), nullable=False),
    sa.Column('started_at', monitor.storage.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', monitor.storage.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', monitor.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('retag_checkpoints')
    with op.batch_alter_table('article_topics', schema=None) as batch_op:
        batch_op.drop_column('explanation')
        batch_op.drop_column('score')
