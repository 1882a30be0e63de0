"""offers: an approved decision's offer, accepted by the enterprise and booked by its lender

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
