"""business calendar: close runs and their status

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('close_jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('through', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('holder', sa.String(length=128), nullable=False, comment='the process that ran it (host:pid)'),
    sa.Column('started_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f('ck_close_jobs_status')),
    sa.CheckConstraint("trigger IN ('schedule', 'catch_up', 'manual')", name=op.f('ck_close_jobs_trigger')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_close_jobs'))
    )
    with op.batch_alter_table('close_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_close_jobs_started_at'), ['started_at'], unique=False)
    op.create_table('close_lock',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=True),
    sa.Column('lease_until', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_close_lock'))
    )


def downgrade() -> None:
    op.drop_table('close_lock')
    with op.batch_alter_table('close_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_close_jobs_started_at'))
    op.drop_table('close_jobs')
