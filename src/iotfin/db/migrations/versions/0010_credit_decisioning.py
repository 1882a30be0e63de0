"""credit decisioning: strategy versions (immutable), deployments, applications, decisions (immutable), reviews

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-01 13:09:33.510042
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotfin.db.types

revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decision_deployments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('strategy_name', sa.String(length=64), nullable=False),
    sa.Column('champion_version', sa.Integer(), nullable=False),
    sa.Column('challenger_version', sa.Integer(), nullable=True),
    sa.Column('challenger_bps', sa.Integer(), nullable=False, comment='challenger share in basis points'),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('deployed_by', sa.String(length=100), nullable=False),
    sa.Column('deployed_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('deploy', 'rollback')", name=op.f('ck_decision_deployments_action')),
    sa.CheckConstraint('challenger_bps BETWEEN 0 AND 10000', name=op.f('ck_decision_deployments_challenger_bps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decision_deployments'))
    )
    with op.batch_alter_table('decision_deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_deployments_strategy_name'), ['strategy_name'], unique=False)

    op.create_table('decision_strategies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False, comment='the JDM graph'),
    sa.Column('sha256', sa.String(length=64), nullable=False, comment='SHA-256 of the canonical JSON of the graph'),
    sa.Column('published_by', sa.String(length=100), nullable=False),
    sa.Column('published_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint('version >= 1', name=op.f('ck_decision_strategies_version_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decision_strategies')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_decision_strategies_name'))
    )
    op.create_table('credit_applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=True, comment="the applicant's reference"),
    sa.Column('enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('core_enterprise_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=False),
    sa.Column('tenor_months', sa.Integer(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False, comment='the application and the risk assessment decided on'),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('approved_amount', iotfin.db.types.Money(precision=18, scale=2), nullable=True),
    sa.Column('received_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('approved', 'declined', 'referred', 'awaiting_second_approval')", name=op.f('ck_credit_applications_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_credit_applications_amount_positive')),
    sa.CheckConstraint('tenor_months > 0', name=op.f('ck_credit_applications_tenor_positive')),
    sa.ForeignKeyConstraint(['core_enterprise_id'], ['enterprises.id'], name=op.f('fk_credit_applications_core_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_credit_applications_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_applications')),
    sa.UniqueConstraint('ref', name=op.f('uq_credit_applications_ref'))
    )
    with op.batch_alter_table('credit_applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_applications_core_enterprise_id'), ['core_enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_applications_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('credit_decisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('strategy_name', sa.String(length=64), nullable=True),
    sa.Column('strategy_version', sa.Integer(), nullable=True),
    sa.Column('arm', sa.String(length=16), nullable=True),
    sa.Column('offered_amount', iotfin.db.types.Money(precision=18, scale=2), nullable=True),
    sa.Column('tenor_months', sa.Integer(), nullable=True),
    sa.Column('rate', sa.String(length=16), nullable=True, comment='gross annual rate, decimal string'),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False, comment='reasons, pricing, limits, disclosure, rule trace'),
    sa.Column('decided_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("decision IN ('approve', 'decline', 'refer', 'counter_offer')", name=op.f('ck_credit_decisions_decision')),
    sa.CheckConstraint("source IN ('strategy', 'review')", name=op.f('ck_credit_decisions_source')),
    sa.ForeignKeyConstraint(['application_id'], ['credit_applications.id'], name=op.f('fk_credit_decisions_application_id_credit_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_decisions'))
    )
    with op.batch_alter_table('credit_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_decisions_application_id'), ['application_id'], unique=False)

    op.create_table('credit_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('officer', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('amount', iotfin.db.types.Money(precision=18, scale=2), nullable=True),
    sa.Column('tenor_months', sa.Integer(), nullable=True),
    sa.Column('rate', sa.String(length=16), nullable=True),
    sa.Column('reviewed_at', iotfin.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('approve', 'decline', 'counter_offer')", name=op.f('ck_credit_reviews_action')),
    sa.ForeignKeyConstraint(['application_id'], ['credit_applications.id'], name=op.f('fk_credit_reviews_application_id_credit_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_reviews'))
    )
    with op.batch_alter_table('credit_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_reviews_application_id'), ['application_id'], unique=False)

    _immutable(IMMUTABLE)


def downgrade() -> None:
    _drop_immutable(IMMUTABLE)
    with op.batch_alter_table('credit_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_reviews_application_id'))

    op.drop_table('credit_reviews')
    with op.batch_alter_table('credit_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_decisions_application_id'))

    op.drop_table('credit_decisions')
    with op.batch_alter_table('credit_applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_applications_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_credit_applications_core_enterprise_id'))

    op.drop_table('credit_applications')
    op.drop_table('decision_strategies')
    with op.batch_alter_table('decision_deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_deployments_strategy_name'))

    op.drop_table('decision_deployments')


# Published strategy versions and decisions never change: a change is a new row. Enforced in the
# database, so no code path (nor a hand-typed UPDATE) can rewrite what decided an application.
IMMUTABLE = ("decision_strategies", "credit_decisions")


def _immutable(tables: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION iotfin_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END $$""")
        for table in tables:
            op.execute(f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION iotfin_refuse_change()")
        return
    for table in tables:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable ({action} refused)'); END")


def _drop_immutable(tables: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in tables:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        op.execute("DROP FUNCTION IF EXISTS iotfin_refuse_change()")
        return
    for table in tables:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
