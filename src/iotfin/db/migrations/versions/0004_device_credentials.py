"""device credentials, attributes, provisioning

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 01:59:23.288263
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_attributes',
    sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("scope IN ('client', 'shared', 'server')", name=op.f('ck_device_attributes_scope')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_attributes_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', 'scope', 'key', name=op.f('pk_device_attributes'))
    )
    op.create_table('device_credentials',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=True),
    sa.Column('mqtt_client_id', sa.String(length=128), nullable=True),
    sa.Column('mqtt_username', sa.String(length=128), nullable=True),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('cert_sha256', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True, comment='rotation grace end'),
    sa.Column('revoked_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('access_token', 'mqtt_basic', 'x509')", name=op.f('ck_device_credentials_kind')),
    sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f('ck_device_credentials_status')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_credentials_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_credentials')),
    sa.UniqueConstraint('cert_sha256', name=op.f('uq_device_credentials_cert_sha256')),
    sa.UniqueConstraint('mqtt_username', name=op.f('uq_device_credentials_mqtt_username')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_device_credentials_token_sha256'))
    )
    with op.batch_alter_table('device_credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_credentials_device_id'), ['device_id'], unique=False)

    with op.batch_alter_table('device_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provision_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('provision_secret_sha256', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_device_profiles_provision_key'), ['provision_key'])

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_devices_name'), ['name'])


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_devices_name'), type_='unique')
        batch_op.drop_column('name')

    with op.batch_alter_table('device_profiles', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_device_profiles_provision_key'), type_='unique')
        batch_op.drop_column('provision_secret_sha256')
        batch_op.drop_column('provision_key')

    with op.batch_alter_table('device_credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_credentials_device_id'))

    op.drop_table('device_credentials')
    op.drop_table('device_attributes')
