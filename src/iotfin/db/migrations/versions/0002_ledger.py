"""ledger: transparency log head, leaves, tiles of subtree hashes, signed checkpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 02:00:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

EMPTY_ROOT = hashlib.sha256(b"").digest()


def upgrade() -> None:
    head = op.create_table('ledger_head',
    sa.Column('id', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('root', sa.LargeBinary(length=32), nullable=False),
    sa.Column('updated_at', iotfin.db.types.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_ledger_head_single_row')),
    sa.CheckConstraint('size >= 0', name=op.f('ck_ledger_head_size_nonnegative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_head'))
    )
    op.create_table('ledger_leaves',
    sa.Column('idx', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('record_type', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.String(length=128), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('idx >= 0', name=op.f('ck_ledger_leaves_idx_nonnegative')),
    sa.PrimaryKeyConstraint('idx', name=op.f('pk_ledger_leaves'))
    )
    op.create_table('ledger_tiles',
    sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hashes', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint('level >= 0 AND idx >= 0', name=op.f('ck_ledger_tiles_position')),
    sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_ledger_tiles'))
    )
    op.create_table('ledger_checkpoints',
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_ledger_checkpoints_size_nonnegative')),
    sa.PrimaryKeyConstraint('size', name=op.f('pk_ledger_checkpoints'))
    )
    # The empty log: appenders lock this row, so it must exist before the first append.
    op.bulk_insert(head, [{'id': 1, 'size': 0, 'root': EMPTY_ROOT}])


def downgrade() -> None:
    op.drop_table('ledger_checkpoints')
    op.drop_table('ledger_tiles')
    op.drop_table('ledger_leaves')
    op.drop_table('ledger_head')
