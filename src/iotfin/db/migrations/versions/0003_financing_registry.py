"""financing registry: assets, liens, external claims, attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:43:37.035350
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('financeable_assets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('identity', sa.JSON(), nullable=False, comment='the normalised identifying fields'),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('document_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('receivable', 'warehouse_receipt', 'inventory_lot', 'vehicle', 'equipment')", name=op.f('ck_financeable_assets_kind')),
    sa.ForeignKeyConstraint(['document_id'], ['trade_documents.id'], name=op.f('fk_financeable_assets_document_id_trade_documents')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_financeable_assets_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_financeable_assets')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_financeable_assets_fingerprint'))
    )
    with op.batch_alter_table('financeable_assets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_financeable_assets_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('external_claims',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('claimant', sa.String(length=200), nullable=False),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('registration_no', sa.String(length=64), nullable=True),
    sa.Column('registered_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('notice_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_external_claims_amount_positive')),
    sa.ForeignKeyConstraint(['asset_id'], ['financeable_assets.id'], name=op.f('fk_external_claims_asset_id_financeable_assets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_claims'))
    )
    with op.batch_alter_table('external_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_external_claims_asset_id'), ['asset_id'], unique=False)

    op.create_table('liens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('financing_ref', sa.String(length=100), nullable=False, comment="the lender's reference: contract or application"),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('registration_no', sa.String(length=64), nullable=True, comment='movable-property financing registration number'),
    sa.Column('registered_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('notice_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True, comment='debtor notified'),
    sa.Column('placed_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('release_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("status = 'active' OR released_at IS NOT NULL", name=op.f('ck_liens_released_has_time')),
    sa.CheckConstraint("status IN ('active', 'released')", name=op.f('ck_liens_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_liens_amount_positive')),
    sa.ForeignKeyConstraint(['asset_id'], ['financeable_assets.id'], name=op.f('fk_liens_asset_id_financeable_assets')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_liens_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_liens'))
    )
    with op.batch_alter_table('liens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_liens_asset_id'), ['asset_id'], unique=False)
        batch_op.create_index('uq_liens_one_active_per_asset', ['asset_id'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.create_table('financing_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('financing_ref', sa.String(length=100), nullable=False),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('lien_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True, comment='the lien placed, or the one that blocked the attempt'),
    sa.Column('attempted_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outcome IN ('placed', 'refused')", name=op.f('ck_financing_attempts_outcome')),
    sa.ForeignKeyConstraint(['asset_id'], ['financeable_assets.id'], name=op.f('fk_financing_attempts_asset_id_financeable_assets')),
    sa.ForeignKeyConstraint(['lien_id'], ['liens.id'], name=op.f('fk_financing_attempts_lien_id_liens')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_financing_attempts_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_financing_attempts'))
    )
    with op.batch_alter_table('financing_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_financing_attempts_asset_id'), ['asset_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('financing_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_financing_attempts_asset_id'))

    op.drop_table('financing_attempts')
    with op.batch_alter_table('liens', schema=None) as batch_op:
        batch_op.drop_index('uq_liens_one_active_per_asset', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index(batch_op.f('ix_liens_asset_id'))

    op.drop_table('liens')
    with op.batch_alter_table('external_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_external_claims_asset_id'))

    op.drop_table('external_claims')
    with op.batch_alter_table('financeable_assets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_financeable_assets_enterprise_id'))

    op.drop_table('financeable_assets')
