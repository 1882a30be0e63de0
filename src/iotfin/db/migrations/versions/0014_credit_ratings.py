"""credit ratings: the stored three-dimension profiles

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('credit_ratings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True, comment='the lender that asked for the rating (NULL: not a tenant here)'),
    sa.Column('lender', sa.String(length=64), nullable=False, comment='consent recipient code the features were read for'),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False, comment='business date (Asia/Shanghai) the features are as of'),
    sa.Column('rated_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('pd', sa.Float(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('grade', sa.String(length=4), nullable=False),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('reads', sa.JSON(), nullable=False, comment='[scope, look-back days] consent reads the features drew on'),
    sa.Column('features_withheld', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_credit_ratings_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_credit_ratings_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_ratings'))
    )
    with op.batch_alter_table('credit_ratings', schema=None) as batch_op:
        batch_op.create_index('ix_credit_ratings_enterprise_lender', ['enterprise_id', 'lender', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_ratings_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('credit_ratings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_ratings_tenant_id'))
        batch_op.drop_index('ix_credit_ratings_enterprise_lender')
    op.drop_table('credit_ratings')
