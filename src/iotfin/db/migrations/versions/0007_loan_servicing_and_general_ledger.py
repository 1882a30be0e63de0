"""loan servicing and general ledger

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:07:55.931356
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('close_runs',
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('loans_closed', sa.BigInteger(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('started_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'done')", name=op.f('ck_close_runs_status')),
    sa.PrimaryKeyConstraint('business_date', name=op.f('pk_close_runs'))
    )
    op.create_table('credit_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('credit_limit', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('rate_ppm', sa.Integer(), nullable=False, comment='annual rate, parts per million'),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'frozen', 'closed')", name=op.f('ck_credit_lines_status')),
    sa.CheckConstraint('credit_limit > 0', name=op.f('ck_credit_lines_limit_positive')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_credit_lines_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_lines'))
    )
    with op.batch_alter_table('credit_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_lines_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('loans',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('credit_line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('method', sa.String(length=24), nullable=False),
    sa.Column('day_count', sa.String(length=16), nullable=False),
    sa.Column('principal', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('rate_ppm', sa.Integer(), nullable=False),
    sa.Column('subsidy_ppm', sa.Integer(), nullable=False),
    sa.Column('penalty_ppm', sa.Integer(), nullable=False),
    sa.Column('term', sa.Integer(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('contract_ref', sa.String(length=64), nullable=True),
    sa.Column('last_closed', sa.Date(), nullable=False),
    sa.Column('principal_not_due', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('accrued', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('principal_due', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('interest_due', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('fee_due', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('penalty_due', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('subsidy_due', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('subsidy_received', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('subsidy_clawed', sa.Boolean(), nullable=False),
    sa.Column('overdue_since', sa.Date(), nullable=True),
    sa.Column('dpd', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('restructured_until', sa.Date(), nullable=True),
    sa.Column('restructured_floor', sa.String(length=16), nullable=False),
    sa.Column('cur_seq', sa.Integer(), nullable=False),
    sa.Column('cur_start', sa.Date(), nullable=True),
    sa.Column('cur_due', sa.Date(), nullable=True),
    sa.Column('cur_principal', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('cur_interest', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('cur_fee', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('cur_subsidy', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'settled')", name=op.f('ck_loans_status')),
    sa.CheckConstraint('principal > 0', name=op.f('ck_loans_principal_positive')),
    sa.CheckConstraint('principal_not_due >= 0 AND principal_due >= 0 AND interest_due >= 0 AND fee_due >= 0 AND penalty_due >= 0 AND subsidy_due >= 0', name=op.f('ck_loans_balances_nonnegative')),
    sa.ForeignKeyConstraint(['credit_line_id'], ['credit_lines.id'], name=op.f('fk_loans_credit_line_id_credit_lines')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_loans_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loans')),
    sa.UniqueConstraint('contract_ref', name=op.f('uq_loans_contract_ref'))
    )
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loans_credit_line_id'), ['credit_line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_loans_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('gl_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('memo', sa.String(length=200), nullable=False),
    sa.Column('at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_gl_entries_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gl_entries'))
    )
    with op.batch_alter_table('gl_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gl_entries_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_gl_entries_loan_id'), ['loan_id'], unique=False)

    op.create_table('loan_bills',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('fee', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('interest', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('principal', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.CheckConstraint('fee >= 0 AND interest >= 0 AND principal >= 0', name=op.f('ck_loan_bills_nonnegative')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_loan_bills_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_bills'))
    )
    with op.batch_alter_table('loan_bills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_bills_loan_id'), ['loan_id'], unique=False)

    op.create_table('loan_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('credit_line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credit_line_id'], ['credit_lines.id'], name=op.f('fk_loan_events_credit_line_id_credit_lines')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_loan_events_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_events'))
    )
    with op.batch_alter_table('loan_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_events_credit_line_id'), ['credit_line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_loan_events_loan_id'), ['loan_id'], unique=False)

    op.create_table('loan_instalments',
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('principal', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('interest', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('fee', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('subsidy', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_loan_instalments_loan_id_loans')),
    sa.PrimaryKeyConstraint('loan_id', 'seq', name=op.f('pk_loan_instalments'))
    )
    op.create_table('gl_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account', sa.String(length=16), nullable=False),
    sa.Column('debit', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('credit', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.CheckConstraint('debit >= 0 AND credit >= 0 AND (debit = 0 OR credit = 0)', name=op.f('ck_gl_lines_one_side')),
    sa.ForeignKeyConstraint(['entry_id'], ['gl_entries.id'], name=op.f('fk_gl_lines_entry_id_gl_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gl_lines'))
    )
    with op.batch_alter_table('gl_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gl_lines_account'), ['account'], unique=False)
        batch_op.create_index(batch_op.f('ix_gl_lines_entry_id'), ['entry_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('gl_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gl_lines_entry_id'))
        batch_op.drop_index(batch_op.f('ix_gl_lines_account'))

    op.drop_table('gl_lines')
    op.drop_table('loan_instalments')
    with op.batch_alter_table('loan_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_events_loan_id'))
        batch_op.drop_index(batch_op.f('ix_loan_events_credit_line_id'))

    op.drop_table('loan_events')
    with op.batch_alter_table('loan_bills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_bills_loan_id'))

    op.drop_table('loan_bills')
    with op.batch_alter_table('gl_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gl_entries_loan_id'))
        batch_op.drop_index(batch_op.f('ix_gl_entries_business_date'))

    op.drop_table('gl_entries')
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loans_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_loans_credit_line_id'))

    op.drop_table('loans')
    with op.batch_alter_table('credit_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_lines_enterprise_id'))

    op.drop_table('credit_lines')
    op.drop_table('close_runs')
