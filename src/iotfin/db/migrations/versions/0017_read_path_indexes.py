"""indexes that follow the hot reads: a decision's exposure sums, the access log's pages, a lender's customers

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('credit_applications', schema=None) as batch_op:
        batch_op.create_index('ix_credit_applications_borrower_exposure', ['enterprise_id', 'status', 'approved_amount'])
        batch_op.create_index('ix_credit_applications_chain_exposure', ['core_enterprise_id', 'status', 'approved_amount'])
        # the single-column indexes are prefixes of the new ones
        batch_op.drop_index('ix_credit_applications_enterprise_id')
        batch_op.drop_index('ix_credit_applications_core_enterprise_id')
    with op.batch_alter_table('consent_access_log', schema=None) as batch_op:
        batch_op.create_index('ix_consent_access_log_enterprise_id', ['enterprise_id', 'id'])
        batch_op.create_index('ix_consent_access_log_enterprise_recipient_id', ['enterprise_id', 'recipient', 'id'])
        batch_op.drop_index('ix_consent_access_log_enterprise_at')  # no query reads by time
    with op.batch_alter_table('record_owners', schema=None) as batch_op:
        batch_op.create_index('ix_record_owners_tenant_enterprise', ['tenant_id', 'enterprise_id'])
        batch_op.drop_index('ix_record_owners_tenant_id')


def downgrade() -> None:
    with op.batch_alter_table('record_owners', schema=None) as batch_op:
        batch_op.create_index('ix_record_owners_tenant_id', ['tenant_id'])
        batch_op.drop_index('ix_record_owners_tenant_enterprise')
    with op.batch_alter_table('consent_access_log', schema=None) as batch_op:
        batch_op.create_index('ix_consent_access_log_enterprise_at', ['enterprise_id', 'at'])
        batch_op.drop_index('ix_consent_access_log_enterprise_recipient_id')
        batch_op.drop_index('ix_consent_access_log_enterprise_id')
    with op.batch_alter_table('credit_applications', schema=None) as batch_op:
        batch_op.create_index('ix_credit_applications_core_enterprise_id', ['core_enterprise_id'])
        batch_op.create_index('ix_credit_applications_enterprise_id', ['enterprise_id'])
        batch_op.drop_index('ix_credit_applications_chain_exposure')
        batch_op.drop_index('ix_credit_applications_borrower_exposure')
