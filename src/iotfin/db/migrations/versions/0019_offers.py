"""offers: an approved decision's offer, accepted by the enterprise and booked by its lender

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('loan_offers',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('application_id', _ID, nullable=False),
    sa.Column('decision_id', _ID, nullable=True),
    sa.Column('enterprise_id', _ID, nullable=False),
    sa.Column('lender_tenant_id', _ID, nullable=True),
    sa.Column('product', sa.String(length=32), nullable=False, comment="the decision's product"),
    sa.Column('servicing_product', sa.String(length=32), nullable=False, comment='the lending product that books it'),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('tenor_months', sa.Integer(), nullable=False),
    sa.Column('rate_ppm', sa.Integer(), nullable=False, comment='annual contract rate, parts per million'),
    sa.Column('subsidy_ppm', sa.Integer(), nullable=False),
    sa.Column('upfront_fee', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('apr_ppm', sa.Integer(), nullable=False, comment='the disclosed APR (IRR, net of subsidy), ppm'),
    sa.Column('start_date', sa.Date(), nullable=False, comment='the value date the key facts are computed from'),
    sa.Column('key_facts_zh', sa.Text(), nullable=False),
    sa.Column('key_facts_en', sa.Text(), nullable=False),
    sa.Column('key_facts_digest', sa.String(length=64), nullable=False, comment='SHA-256 of zh + NUL + en'),
    sa.Column('expires_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('accepted_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_by', sa.String(length=100), nullable=True),
    sa.Column('loan_id', _ID, nullable=True),
    sa.Column('credit_line_id', _ID, nullable=True),
    sa.Column('booked_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'accepted', 'booked', 'expired')", name=op.f('ck_loan_offers_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_loan_offers_amount_positive')),
    sa.CheckConstraint('tenor_months > 0', name=op.f('ck_loan_offers_tenor_positive')),
    sa.ForeignKeyConstraint(['application_id'], ['credit_applications.id'], name=op.f('fk_loan_offers_application_id_credit_applications')),
    sa.ForeignKeyConstraint(['credit_line_id'], ['credit_lines.id'], name=op.f('fk_loan_offers_credit_line_id_credit_lines')),
    sa.ForeignKeyConstraint(['decision_id'], ['credit_decisions.id'], name=op.f('fk_loan_offers_decision_id_credit_decisions')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_loan_offers_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['lender_tenant_id'], ['tenants.id'], name=op.f('fk_loan_offers_lender_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_loan_offers_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_offers'))
    )
    with op.batch_alter_table('loan_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_offers_application_id'), ['application_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_loan_offers_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_loan_offers_lender_tenant_id'), ['lender_tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('loan_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_offers_lender_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_loan_offers_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_loan_offers_application_id'))
    op.drop_table('loan_offers')
