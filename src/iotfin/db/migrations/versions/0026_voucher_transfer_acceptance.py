"""voucher transfers accepted by the receiver: receivable_parts.pending_to_id, event kinds send and reject (issue 20)

A transfer is now sent (the part stays the holder's, frozen, with the receiver in pending_to_id)
and completes when the receiver accepts it; a rejection (by the receiver, or the holder's recall)
clears it. The journal gains the kinds `send` and `reject`.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

OLD_KINDS = ('issue', 'split', 'transfer', 'offer', 'finance', 'decline', 'withdraw', 'pay', 'cancel', 'late')
NEW_KINDS = ('issue', 'split', 'send', 'transfer', 'reject', 'offer', 'finance', 'decline', 'withdraw', 'pay',
             'cancel', 'late')


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table('receivable_parts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_to_id', sa.BigInteger(), nullable=True,
                                      comment='a transfer sent and not yet accepted: the receiving enterprise '
                                              '(the part is frozen until then)'))
        batch_op.create_index(batch_op.f('ix_receivable_parts_pending_to_id'), ['pending_to_id'], unique=False)
    with op.batch_alter_table('receivable_events', schema=None, recreate='auto') as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_receivable_events_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_receivable_events_kind'), _kinds(NEW_KINDS))


def downgrade() -> None:
    with op.batch_alter_table('receivable_events', schema=None, recreate='auto') as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_receivable_events_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_receivable_events_kind'), _kinds(OLD_KINDS))
    with op.batch_alter_table('receivable_parts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_receivable_parts_pending_to_id'))
        batch_op.drop_column('pending_to_id')
