"""business calendar: close runs and their status

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
