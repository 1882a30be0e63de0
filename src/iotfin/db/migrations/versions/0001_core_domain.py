"""core domain: tenants, enterprises, sites, chains, trade documents, devices

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:07:07.654146
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_profiles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('device_type', sa.String(length=32), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=False),
    sa.Column('inactivity_timeout_s', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.CheckConstraint('inactivity_timeout_s > 0', name=op.f('ck_device_profiles_inactivity_timeout')),
    sa.CheckConstraint('interval_s > 0', name=op.f('ck_device_profiles_interval')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_profiles')),
    sa.UniqueConstraint('name', name=op.f('uq_device_profiles_name'))
    )
    op.create_table('enterprises',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=False, comment='unified social credit code'),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('sector', sa.String(length=32), nullable=False),
    sa.Column('subsector', sa.String(length=64), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=False),
    sa.Column('founded_on', sa.Date(), nullable=False),
    sa.Column('registered_capital', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('legal_rep_name', sa.String(length=100), nullable=False),
    sa.Column('legal_rep_id_number', sa.String(length=64), nullable=False),
    sa.Column('legal_rep_phone', sa.String(length=32), nullable=False),
    sa.Column('tax_grade', sa.String(length=1), nullable=False),
    sa.Column('litigation_count', sa.Integer(), nullable=False),
    sa.Column('key_person_changes', sa.Integer(), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("sector IN ('manufacturing', 'logistics', 'energy', 'agriculture', 'infrastructure')", name=op.f('ck_enterprises_sector')),
    sa.CheckConstraint("tax_grade IN ('A', 'B', 'M', 'C', 'D')", name=op.f('ck_enterprises_tax_grade')),
    sa.CheckConstraint('litigation_count >= 0', name=op.f('ck_enterprises_litigation_nonnegative')),
    sa.CheckConstraint('registered_capital >= 0', name=op.f('ck_enterprises_capital_nonnegative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enterprises')),
    sa.UniqueConstraint('uscc', name=op.f('uq_enterprises_uscc'))
    )
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enterprises_region_code'), ['region_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_enterprises_sector'), ['sector'], unique=False)

    op.create_table('tenants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('bank', 'platform')", name=op.f('ck_tenants_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('code', name=op.f('uq_tenants_code'))
    )
    op.create_table('sites',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('geofence_radius_m', sa.Float(), nullable=True),
    sa.CheckConstraint('lat BETWEEN -90 AND 90', name=op.f('ck_sites_lat')),
    sa.CheckConstraint('lon BETWEEN -180 AND 180', name=op.f('ck_sites_lon')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_sites_enterprise_id_enterprises'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites'))
    )
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sites_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('supply_chains',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('core_enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['core_enterprise_id'], ['enterprises.id'], name=op.f('fk_supply_chains_core_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supply_chains'))
    )
    with op.batch_alter_table('supply_chains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supply_chains_core_enterprise_id'), ['core_enterprise_id'], unique=False)

    op.create_table('chain_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chain_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('tier', sa.SmallInteger(), nullable=False),
    sa.CheckConstraint("role IN ('core', 'supplier', 'buyer')", name=op.f('ck_chain_members_role')),
    sa.CheckConstraint('tier >= 0', name=op.f('ck_chain_members_tier')),
    sa.ForeignKeyConstraint(['chain_id'], ['supply_chains.id'], name=op.f('fk_chain_members_chain_id_supply_chains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_chain_members_enterprise_id_enterprises'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_members')),
    sa.UniqueConstraint('chain_id', 'enterprise_id', name=op.f('uq_chain_members_chain_id'))
    )
    with op.batch_alter_table('chain_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chain_members_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('devices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('profile_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_type', sa.String(length=32), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=True),
    sa.Column('installed_on', sa.Date(), nullable=True),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'inactive', 'revoked')", name=op.f('ck_devices_status')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_devices_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['profile_id'], ['device_profiles.id'], name=op.f('fk_devices_profile_id_device_profiles')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_devices_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('serial', name=op.f('uq_devices_serial'))
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_devices_site_id'), ['site_id'], unique=False)

    op.create_table('relationships',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chain_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('core_enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('supplier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('buyer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tier', sa.SmallInteger(), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.CheckConstraint('supplier_id <> buyer_id', name=op.f('ck_relationships_distinct_parties')),
    sa.CheckConstraint('tier >= 1', name=op.f('ck_relationships_tier')),
    sa.ForeignKeyConstraint(['buyer_id'], ['enterprises.id'], name=op.f('fk_relationships_buyer_id_enterprises')),
    sa.ForeignKeyConstraint(['chain_id'], ['supply_chains.id'], name=op.f('fk_relationships_chain_id_supply_chains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['core_enterprise_id'], ['enterprises.id'], name=op.f('fk_relationships_core_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['supplier_id'], ['enterprises.id'], name=op.f('fk_relationships_supplier_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relationships')),
    sa.UniqueConstraint('chain_id', 'supplier_id', 'buyer_id', name=op.f('uq_relationships_chain_id'))
    )
    with op.batch_alter_table('relationships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_relationships_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_relationships_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('trade_documents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('doc_type', sa.String(length=32), nullable=False),
    sa.Column('chain_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('seller_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('buyer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('commodity', sa.String(length=64), nullable=True),
    sa.Column('quantity', sa.Float(), nullable=True),
    sa.Column('invoice_code', sa.String(length=20), nullable=True),
    sa.Column('invoice_number', sa.String(length=20), nullable=True),
    sa.Column('vehicle_device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("doc_type IN ('purchase_order', 'delivery_note', 'invoice', 'warehouse_receipt', 'payment')", name=op.f('ck_trade_documents_doc_type')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_trade_documents_amount_nonnegative')),
    sa.CheckConstraint('due_on IS NULL OR due_on >= issued_on', name=op.f('ck_trade_documents_due_after_issue')),
    sa.ForeignKeyConstraint(['buyer_id'], ['enterprises.id'], name=op.f('fk_trade_documents_buyer_id_enterprises')),
    sa.ForeignKeyConstraint(['chain_id'], ['supply_chains.id'], name=op.f('fk_trade_documents_chain_id_supply_chains')),
    sa.ForeignKeyConstraint(['seller_id'], ['enterprises.id'], name=op.f('fk_trade_documents_seller_id_enterprises')),
    sa.ForeignKeyConstraint(['vehicle_device_id'], ['devices.id'], name=op.f('fk_trade_documents_vehicle_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trade_documents'))
    )
    with op.batch_alter_table('trade_documents', schema=None) as batch_op:
        batch_op.create_index('ix_trade_documents_buyer_issued', ['buyer_id', 'issued_on'], unique=False)
        batch_op.create_index('ix_trade_documents_invoice', ['invoice_code', 'invoice_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_trade_documents_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_trade_documents_seller_issued', ['seller_id', 'issued_on'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('trade_documents', schema=None) as batch_op:
        batch_op.drop_index('ix_trade_documents_seller_issued')
        batch_op.drop_index(batch_op.f('ix_trade_documents_order_id'))
        batch_op.drop_index('ix_trade_documents_invoice')
        batch_op.drop_index('ix_trade_documents_buyer_issued')

    op.drop_table('trade_documents')
    with op.batch_alter_table('relationships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_relationships_supplier_id'))
        batch_op.drop_index(batch_op.f('ix_relationships_buyer_id'))

    op.drop_table('relationships')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_site_id'))
        batch_op.drop_index(batch_op.f('ix_devices_enterprise_id'))

    op.drop_table('devices')
    with op.batch_alter_table('chain_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chain_members_enterprise_id'))

    op.drop_table('chain_members')
    with op.batch_alter_table('supply_chains', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supply_chains_core_enterprise_id'))

    op.drop_table('supply_chains')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sites_enterprise_id'))

    op.drop_table('sites')
    op.drop_table('tenants')
    with op.batch_alter_table('enterprises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enterprises_sector'))
        batch_op.drop_index(batch_op.f('ix_enterprises_region_code'))

    op.drop_table('enterprises')
    op.drop_table('device_profiles')
