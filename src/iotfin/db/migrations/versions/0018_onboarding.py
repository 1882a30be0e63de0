"""onboarding: partner tenants with contacts, enterprise onboarding by lenders, site addresses

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 16:30:00

Tenants gain the kind `partner` (IoT vendors, logistics and warehouse operators, `partner_kind`) and a
business contact; sites gain a postal address; `record_owners` gains the kind `enterprise` (the
lender that onboarded an enterprise has it as a customer).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

PARTNER_KIND = ("(kind = 'partner' AND partner_kind IS NOT NULL AND partner_kind IN ('iot_vendor', 'logistics', "
                "'warehouse')) OR "
                "(kind <> 'partner' AND partner_kind IS NULL)")


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('contact_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('contact_phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('contact_email', sa.String(length=254), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_tenants_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_tenants_kind'), "kind IN ('bank', 'partner', 'platform')")
        batch_op.create_check_constraint(batch_op.f('ck_tenants_partner_kind'), PARTNER_KIND)
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=500), nullable=True))
    with op.batch_alter_table('record_owners', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_record_owners_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_record_owners_kind'),
                                         "kind IN ('loan', 'credit_line', 'application', 'enterprise')")


def downgrade() -> None:
    op.execute("DELETE FROM record_owners WHERE kind = 'enterprise'")
    with op.batch_alter_table('record_owners', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_record_owners_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_record_owners_kind'), "kind IN ('loan', 'credit_line', 'application')")
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('address')
    # a partner tenant has no place in the older schema: refuse rather than silently drop it (the
    # CHECK below fails while partner rows exist)
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_tenants_partner_kind'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_tenants_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_tenants_kind'), "kind IN ('bank', 'platform')")
        batch_op.drop_column('contact_email')
        batch_op.drop_column('contact_phone')
        batch_op.drop_column('contact_name')
        batch_op.drop_column('partner_kind')
