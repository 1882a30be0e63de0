"""Loan servicing: products, schedules, daily close, general ledger, disclosure (see docs/lending.md)."""

from __future__ import annotations

from typing import Any


def demo_step(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The demo's lending step (iotfin.demo.lending.demo_step), imported on first use."""
    from iotfin.demo.lending import demo_step as step

    return step(*args, **kwargs)
