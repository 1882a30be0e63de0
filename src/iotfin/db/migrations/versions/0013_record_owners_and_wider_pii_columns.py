"""record owners (tenant isolation of loans, credit lines, applications) and wider personal-data columns

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 16:40:00

The legal representative's name, ID number and phone are widened to hold their AES-GCM ciphertext
(`enc:v1:<kid>:<base64>`); encrypting the existing rows needs the workspace's key ring and so is
not done by the migration: `ws.initialise()` (`iotfin db upgrade`, `serve`, `demo`) and `iotfin
protection reencrypt` do it. Downgrading narrows the
columns back; with ciphertext in them that fails on PostgreSQL (value too long), which is the safe
outcome — there is no decrypting downgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

PII = ("legal_rep_name", "legal_rep_id_number", "legal_rep_phone")
OLD = {"legal_rep_name": 100, "legal_rep_id_number": 64, "legal_rep_phone": 32}


def upgrade() -> None:
    op.create_table('record_owners',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('record_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('tenant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('loan', 'credit_line', 'application')", name=op.f('ck_record_owners_kind')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_record_owners_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('kind', 'record_id', name=op.f('pk_record_owners'))
    )
    with op.batch_alter_table('record_owners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_record_owners_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_record_owners_tenant_id'), ['tenant_id'], unique=False)
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        for column in PII:
            batch_op.alter_column(column, existing_type=sa.String(length=OLD[column]), type_=sa.String(length=512),
                                  existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        for column in PII:
            batch_op.alter_column(column, existing_type=sa.String(length=512), type_=sa.String(length=OLD[column]),
                                  existing_nullable=False)
    with op.batch_alter_table('record_owners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_owners_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_record_owners_enterprise_id'))
    op.drop_table('record_owners')
