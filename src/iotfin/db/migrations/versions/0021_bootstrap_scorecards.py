"""bootstrap scorecards, versioned like strategies

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('risk_scorecards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False, comment='the scorecard (iotfin-bootstrap-scorecard/1)'),
    sa.Column('sha256', sa.String(length=64), nullable=False, comment='SHA-256 of the canonical JSON of the content'),
    sa.Column('published_by', sa.String(length=100), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('published_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_risk_scorecards_version_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_scorecards')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_risk_scorecards_name'))
    )


def downgrade() -> None:
    op.drop_table('risk_scorecards')
