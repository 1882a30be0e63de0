"""ledger anchors

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 02:37:42.522262
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger_anchors',
    sa.Column('leaf_index', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('record_type', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.String(length=128), nullable=False),
    sa.Column('salt', sa.LargeBinary(length=32), nullable=True),
    sa.PrimaryKeyConstraint('leaf_index', name=op.f('pk_ledger_anchors'))
    )
    with op.batch_alter_table('ledger_anchors', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_anchors_record', ['record_type', 'record_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ledger_anchors', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_anchors_record')

    op.drop_table('ledger_anchors')
