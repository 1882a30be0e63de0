"""monitoring alerts, notifications, commodity prices

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 13:10:06.740342
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('commodity_prices',
    sa.Column('commodity', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('price', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('unit', sa.String(length=8), nullable=False),
    sa.CheckConstraint('price > 0', name=op.f('ck_commodity_prices_positive')),
    sa.PrimaryKeyConstraint('commodity', 'day', name=op.f('pk_commodity_prices'))
    )
    op.create_table('monitor_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('enterprise_id', sa.BigInteger(), nullable=False),
    sa.Column('incident_type', sa.String(length=48), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('rules_version', sa.String(length=64), nullable=False),
    sa.Column('reason_zh', sa.String(length=500), nullable=False),
    sa.Column('reason_en', sa.String(length=500), nullable=False),
    sa.Column('devices', sa.Text(), nullable=False),
    sa.Column('opened_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('raised_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cleared_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('signal_events', sa.Integer(), nullable=False),
    sa.Column('assigned_to', sa.String(length=128), nullable=True),
    sa.Column('resolution_reason', sa.Text(), nullable=True),
    sa.Column('updated_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name=op.f('ck_monitor_alerts_status')),
    sa.CheckConstraint("tier IN ('none', 'watch', 'alert', 'freeze', 'margin_call')", name=op.f('ck_monitor_alerts_tier')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_alerts'))
    )
    with op.batch_alter_table('monitor_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitor_alerts_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('monitor_alert_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['monitor_alerts.id'], name=op.f('fk_monitor_alert_events_alert_id_monitor_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_alert_events'))
    )
    with op.batch_alter_table('monitor_alert_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitor_alert_events_alert_id'), ['alert_id'], unique=False)

    op.create_table('monitor_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enterprise_id', sa.BigInteger(), nullable=False),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('text_zh', sa.Text(), nullable=False),
    sa.Column('text_en', sa.Text(), nullable=False),
    sa.Column('created_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("audience IN ('lender', 'enterprise')", name=op.f('ck_monitor_notifications_audience')),
    sa.ForeignKeyConstraint(['alert_id'], ['monitor_alerts.id'], name=op.f('fk_monitor_notifications_alert_id_monitor_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_notifications'))
    )
    with op.batch_alter_table('monitor_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitor_notifications_alert_id'), ['alert_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('monitor_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitor_notifications_alert_id'))

    op.drop_table('monitor_notifications')
    with op.batch_alter_table('monitor_alert_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitor_alert_events_alert_id'))

    op.drop_table('monitor_alert_events')
    with op.batch_alter_table('monitor_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitor_alerts_enterprise_id'))

    op.drop_table('monitor_alerts')
    op.drop_table('commodity_prices')
