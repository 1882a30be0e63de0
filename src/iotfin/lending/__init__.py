"""Loan servicing: products, schedules, daily close, general ledger, disclosure (see docs/lending.md)."""
