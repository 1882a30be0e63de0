"""The `iotfin` command line: one module per context, a shared kit (`kit.py`) for output and options.

Exit codes: 0 success; 1 unexpected failure; 2 usage error (typer); 65 bad input data; 66 not found;
69 a service unavailable; 75 conflict; 78 bad configuration. Errors print one line to stderr.

This package holds the commands over the contexts' services. The composition root (`iotfin.app`)
adds the server commands and the workspace opener, the demo package adds `demo` and `sim`, and
`iotfin.main` puts them together: the entry point.
"""

from __future__ import annotations

import sys

import typer

import iotfin
from iotfin.cli import kit
from iotfin.cli.consent import consent_app
from iotfin.cli.db import db_app
from iotfin.cli.decision import decision_app
from iotfin.cli.devices import devices_app
from iotfin.cli.identity import clients_app, protection_app, users_app
from iotfin.cli.industry import industry_app
from iotfin.cli.kit import JsonOpt
from iotfin.cli.ledger import financing_app, ledger_app
from iotfin.cli.lending import loan_app
from iotfin.cli.monitor import monitor_app
from iotfin.cli.onboarding import enterprises_app, sites_app, tenants_app
from iotfin.cli.receivables import vouchers_app
from iotfin.cli.risk import risk_app
from iotfin.cli.telemetry import telemetry_app
from iotfin.core.errors import IotfinError

app = typer.Typer(help="iotfin: IoT-backed lending for small and micro enterprises.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for sub_app, name in ((db_app, "db"), (telemetry_app, "telemetry"), (devices_app, "devices"), (ledger_app, "ledger"),
                      (financing_app, "financing"), (loan_app, "loan"), (risk_app, "risk"), (consent_app, "consent"),
                      (decision_app, "decision"), (monitor_app, "monitor"), (clients_app, "clients"),
                      (users_app, "users"), (protection_app, "protection"), (tenants_app, "tenants"),
                      (enterprises_app, "enterprises"), (sites_app, "sites"), (industry_app, "industry"),
                      (vouchers_app, "vouchers")):
    app.add_typer(sub_app, name=name)


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print the iotfin version."""
    kit.emit({"version": iotfin.__version__}, as_json, lambda d: kit.out.print(f"iotfin {d['version']}"))


def run(argv: list[str] | None = None) -> None:
    """Run the command line: typed errors become one line on stderr and a meaningful exit code."""
    try:
        app(args=argv)
    except IotfinError as exc:
        print(f"iotfin: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
