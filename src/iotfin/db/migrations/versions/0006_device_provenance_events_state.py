"""provenance, device events and state, claims

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:06:21.159012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False, comment='UTC epoch ms'),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_events'))
    )
    with op.batch_alter_table('device_events', schema=None) as batch_op:
        batch_op.create_index('ix_device_events_device_id_id', ['device_id', 'id'], unique=False)

    op.create_table('profile_provenance',
    sa.Column('profile_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['device_profiles.id'], name=op.f('fk_profile_provenance_profile_id_device_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('profile_id', name=op.f('pk_profile_provenance'))
    )
    op.create_table('device_claims',
    sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False, comment='UTC epoch ms'),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_claims_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_claims'))
    )
    op.create_table('device_provenance',
    sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hmac_secret', sa.String(length=64), nullable=True, comment='hex, 32 bytes'),
    sa.Column('ed25519_public', sa.String(length=64), nullable=True, comment='hex, 32 bytes'),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('counter', sa.BigInteger(), nullable=False, comment='highest accepted counter'),
    sa.Column('updated_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_provenance_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_provenance'))
    )
    op.create_table('device_state',
    sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('last_activity_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_connect_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_disconnect_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_state_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_state'))
    )


def downgrade() -> None:
    op.drop_table('device_state')
    op.drop_table('device_provenance')
    op.drop_table('device_claims')
    op.drop_table('profile_provenance')
    with op.batch_alter_table('device_events', schema=None) as batch_op:
        batch_op.drop_index('ix_device_events_device_id_id')

    op.drop_table('device_events')
