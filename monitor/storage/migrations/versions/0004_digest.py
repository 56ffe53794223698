"""digest: saved searches, subscriptions, deliveries

Revision ID: 0004
Revises: 0008
Create Date: 2026-12-02 18:40:00
"""
from alembic import op
import sqlalchemy as sa
import monitor.storage.models


revision = '0004'
down_revision = '0008'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = monitor.storage.models.UTCDateTime


def upgrade() -> None:
    op.create_table('saved_searches',
    sa.Column('id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('owner', sa.String(length=320), nullable=True),
    sa.Column('created_at', UTC(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('subscriptions',
    sa.Column('id', ID, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('saved_search_id', ID, nullable=False),
    sa.Column('send_hour', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('paused_reason', sa.Text(), nullable=True),
    sa.Column('send_empty', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC(), nullable=False),
    sa.Column('confirm_sent_at', UTC(), nullable=True),
    sa.Column('confirmed_at', UTC(), nullable=True),
    sa.Column('active_since', UTC(), nullable=True),
    sa.Column('unsubscribed_at', UTC(), nullable=True),
    sa.Column('token_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['saved_search_id'], ['saved_searches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email', 'saved_search_id', name='uq_subscriptions_email_search')
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscriptions_saved_search_id'), ['saved_search_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscriptions_state'), ['state'], unique=False)

    op.create_table('digest_deliveries',
    sa.Column('id', ID, nullable=False),
    sa.Column('subscription_id', ID, nullable=False),
    sa.Column('local_day', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('lease_until', UTC(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTC(), nullable=True),
    sa.Column('message_id', sa.String(length=300), nullable=False),
    sa.Column('window_start', UTC(), nullable=True),
    sa.Column('window_end', UTC(), nullable=True),
    sa.Column('story_count', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', UTC(), nullable=False),
    sa.Column('sending_at', UTC(), nullable=True),
    sa.Column('finished_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_id', 'local_day', name='uq_digest_deliveries_sub_day')
    )
    with op.batch_alter_table('digest_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digest_deliveries_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_digest_deliveries_subscription_id'), ['subscription_id'], unique=False)


def downgrade() -> None:
    op.drop_table('digest_deliveries')
    op.drop_table('subscriptions')
    op.drop_table('saved_searches')
