"""no schema change: a reserved revision nobody needed, kept because databases created since it landed are stamped at it

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 23:00:00
"""

from __future__ import annotations

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
