"""consent grants and access log

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:06:11.704184
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consent_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('granted_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reconfirm_days', sa.SmallInteger(), nullable=False),
    sa.Column('onward_recipients', sa.JSON(), nullable=False),
    sa.Column('withdrawn_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('expires_at > granted_at', name=op.f('ck_consent_grants_expiry')),
    sa.CheckConstraint('reconfirm_days BETWEEN 1 AND 90', name=op.f('ck_consent_grants_reconfirm_days')),
    sa.CheckConstraint('window_end >= window_start', name=op.f('ck_consent_grants_window')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_consent_grants_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_grants'))
    )
    with op.batch_alter_table('consent_grants', schema=None) as batch_op:
        batch_op.create_index('ix_consent_grants_enterprise_recipient', ['enterprise_id', 'recipient'], unique=False)
        batch_op.create_index('ix_consent_grants_recipient', ['recipient'], unique=False)

    op.create_table('consent_access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('data_start', sa.Date(), nullable=False),
    sa.Column('data_end', sa.Date(), nullable=False),
    sa.Column('at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('allowed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('grant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('onward_to', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['grant_id'], ['consent_grants.id'], name=op.f('fk_consent_access_log_grant_id_consent_grants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_access_log'))
    )
    with op.batch_alter_table('consent_access_log', schema=None) as batch_op:
        batch_op.create_index('ix_consent_access_log_enterprise_at', ['enterprise_id', 'at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('consent_access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_access_log_enterprise_at')

    op.drop_table('consent_access_log')
    with op.batch_alter_table('consent_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_grants_recipient')
        batch_op.drop_index('ix_consent_grants_enterprise_recipient')

    op.drop_table('consent_grants')
