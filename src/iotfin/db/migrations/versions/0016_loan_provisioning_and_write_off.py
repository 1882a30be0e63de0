"""loan-loss provisioning, write-off and recovery

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-01 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0016'
down_revision = '0014'
branch_labels = None
depends_on = None

MONEY = iotfin.db.types.Money(precision=18, scale=2)


def upgrade() -> None:
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provision', MONEY, server_default='0', nullable=False))
        batch_op.add_column(sa.Column('written_off', MONEY, server_default='0', nullable=False))
        batch_op.add_column(sa.Column('recovered', MONEY, server_default='0', nullable=False))
        batch_op.add_column(sa.Column('written_off_on', sa.Date(), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_loans_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_loans_status'), "status IN ('active', 'settled', 'written_off')")


def downgrade() -> None:
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_loans_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_loans_status'), "status IN ('active', 'settled')")
        batch_op.drop_column('written_off_on')
        batch_op.drop_column('recovered')
        batch_op.drop_column('written_off')
        batch_op.drop_column('provision')
