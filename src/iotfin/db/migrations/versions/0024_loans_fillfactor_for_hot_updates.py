"""loans fillfactor for HOT updates (PostgreSQL), loan instalments by due date

The daily close rewrites every active loan once a day (accrual, dpd, tier, provision, last_closed).
None of those columns is indexed, so PostgreSQL can update a row in place on its own page (a HOT
update: no new entries in the table's four indexes, far less WAL) — if the page has room for the
new version. At the default fillfactor (100) it has none, and every loan's update moves the row to
another page and inserts four index entries. A fillfactor of 45 leaves room for the day's new
version (and the second one of a loan that is billed that day); the old versions are pruned on
the next visit to the page. Measured in docs/benchmarks.md (issue 21).

Applies to pages written from now on (a fresh install, a bulk load); an existing book is rewritten
with `VACUUM FULL loans` in a maintenance window (docs/deployment.md). SQLite has no fillfactor:
nothing to do there.

`loan_instalments.due_date` is indexed on both backends: the close's `repayment.due` notices look up
one due date across the whole book every day (a full scan of ~7 rows a loan without it).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

FILLFACTOR = 45


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE loans SET (fillfactor = {FILLFACTOR})")
    with op.batch_alter_table('loan_instalments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_instalments_due_date'), ['due_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('loan_instalments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_instalments_due_date'))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE loans RESET (fillfactor)")
