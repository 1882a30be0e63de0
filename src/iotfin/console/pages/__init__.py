"""The console's pages, one module per audience; each module has `router()` and `NAV`.

    officer     credit officer and approver: home, applications, enterprise 360, alerts
    risk        risk manager: portfolio, strategies, models
    operator    platform operator: fleet, ledger, daily close, users and partner clients
    portal      enterprise: devices and data, consents and access log, offers, loans, complaints
"""

from __future__ import annotations

from iotfin.api.routing import ApiRouter
from iotfin.console.pages import charts, officer, operator, portal, risk
from iotfin.console.web import NavItem
from iotfin.identity.model import Principal

MODULES = (officer, risk, operator, portal)


def routers() -> list[ApiRouter]:
    return [charts.router(), *(module.router() for module in MODULES)]


def nav_for(who: Principal) -> list[tuple[str, list[NavItem]]]:
    """The navigation a user sees: (section msgid, items) in page-module order, only what they may open."""
    sections: dict[str, list[NavItem]] = {}
    for module in MODULES:
        for item in module.NAV:
            if item.visible_to(who):
                sections.setdefault(item.section, []).append(item)
    return list(sections.items())
