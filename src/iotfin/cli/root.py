"""The `iotfin` command.

Exit codes: 0 success; 1 unexpected failure; 2 usage error (typer); 65 bad input data; 66 not found;
69 a service unavailable; 75 conflict; 78 bad configuration. Errors print one line to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import iotfin
from iotfin.cli.consent import consent_app
from iotfin.cli.decision import decision_app
from iotfin.cli.lending import loan_app
from iotfin.cli.monitor import monitor_app
from iotfin.cli.risk import risk_app
from iotfin.core.errors import ConfigError, IotfinError, ValidationError
from iotfin.core.jsonout import dumps
from iotfin.core.settings import Settings, load_settings
from iotfin.core.time import parse_time

app = typer.Typer(help="iotfin: IoT-backed lending for small and micro enterprises.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="System of record: migrations.", no_args_is_help=True)
sim_app = typer.Typer(help="Synthetic IoT economy.", no_args_is_help=True)
telemetry_app = typer.Typer(help="Telemetry store queries.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sim_app, name="sim")
app.add_typer(telemetry_app, name="telemetry")
devices_app = typer.Typer(help="Devices: create, credentials, provisioning.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
ledger_app = typer.Typer(help="Trusted ledger: checkpoints, evidence bundles, audit, witnessing.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
financing_app = typer.Typer(help="Financing registry: liens on receivables, receipts, stock, vehicles.", no_args_is_help=True)
app.add_typer(financing_app, name="financing")
app.add_typer(loan_app, name="loan")
app.add_typer(risk_app, name="risk")
app.add_typer(consent_app, name="consent")
app.add_typer(decision_app, name="decision")
app.add_typer(monitor_app, name="monitor")
from iotfin.cli.identity import clients_app, protection_app, users_app  # noqa: E402  open API administration

app.add_typer(clients_app, name="clients")
app.add_typer(users_app, name="users")
app.add_typer(protection_app, name="protection")

console = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Workspace folder (IOTFIN_DATA_DIR).")]


def _settings(data_dir: Path | None = None) -> Settings:
    return load_settings(data_dir=data_dir)


def _workspace(data_dir: Path | None = None, schema: bool = False):  # noqa: ANN202 - lazy import keeps `iotfin --help` fast
    """The workspace; with schema=True, refuse (exit 78) a database not migrated to the code's head."""
    from iotfin.app.workspace import Workspace
    from iotfin.db import migrate

    ws = Workspace(_settings(data_dir))
    if schema:
        current, head = migrate.current_revision(ws.engine), migrate.head_revision()
        if current != head:
            raise ConfigError(f"database is at schema revision {current or 'none'}, the code needs {head}: "
                              "run `iotfin db upgrade`")
    return ws


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        print(dumps(data))
    else:
        render(data)


@contextmanager
def _progress(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by (stage, done, total) callbacks; silent when not a terminal or disabled."""
    bar = Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=not enabled, transient=False)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def _kv_table(title: str, data: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in data.items():
        table.add_row(str(key), value if isinstance(value, str) else dumps(value))
    return table


# --- top level --------------------------------------------------------------------------------


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print the iotfin version."""
    _emit({"version": iotfin.__version__}, as_json, lambda d: out.print(f"iotfin {d['version']}"))


@app.command()
def demo(
    headless: Annotated[bool, typer.Option("--headless", help="Do not serve the platform afterwards.")] = False,
    as_json: JsonOpt = False,
    workspace: Annotated[Path, typer.Option(help="Demo workspace (rebuilt on every run).")] = Path(".iotfin/demo"),
    enterprises: Annotated[int, typer.Option(min=10, max=100_000)] = 300,
    devices: Annotated[int | None, typer.Option(help="Fleet size (default: 2,000, or 10 per enterprise if fewer).")] = None,
    days: Annotated[int, typer.Option(min=30, max=3650)] = 180,
    seed: int = 42,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Build a fresh workspace, simulate an economy, load it through the platform, summarise, serve."""
    from iotfin.demo.run import run_demo

    with _progress(enabled=not as_json) as progress:
        fleet = devices if devices is not None else min(2_000, 10 * enterprises)
        ws, summary = run_demo(workspace, enterprises=enterprises, days=days, seed=seed, devices=fleet, progress=progress)
    _emit(summary, as_json, _render_demo)
    if not headless:
        _serve(ws, port)


def _render_demo(s: dict[str, Any]) -> None:
    out.print(f"[bold]iotfin demo[/bold] — workspace {s['workspace']} (schema {s['schema_revision']})")
    out.print(_kv_table("Economy / 经济体", s["economy"]))
    out.print(_kv_table("Devices / 设备", s["devices"]["by_type"] | {"total": s["devices"]["total"]}))
    docs = Table(title="Trade documents / 贸易单据", title_justify="left")
    docs.add_column("type")
    docs.add_column("count", justify="right")
    docs.add_column("amount (CNY)", justify="right")
    for doc_type, row in sorted(s["trade_documents"].items()):
        docs.add_row(doc_type, f"{row['count']:,}", f"{row['amount']:,}")
    out.print(docs)
    out.print(_kv_table("Telemetry ingest / 遥测接入", s["ingest"] | {"stored": s["telemetry"]}))
    out.print(_kv_table("Data points by transport / 各接入方式数据点", {
        k: "sent {sent:,} · acknowledged {acknowledged:,} · rejected {rejected:,} · stored {stored:,}".format(**v)
        for k, v in s["telemetry_transports"].items() if isinstance(v, dict)}))
    fin = s["financing_registry"]
    out.print(_kv_table("Financing registry / 融资登记", {k: v for k, v in fin.items() if k != "refused_examples"}))
    for example in fin["refused_examples"]:
        out.print(f"  [red]refused / 拒绝重复融资[/red] request {example['request_id']} "
                  f"(invoice typed as {example['invoice_number_as_typed']!r}): {example['reason']}")
        out.print(f"    {example['reason_zh']}")
    out.print(_kv_table("Ground truth / 真实标签", s["ground_truth"]))
    out.print(_kv_table("Timings (s) / 耗时(秒)", s["timings_s"]))


def _serve(ws: Any, port: int, host: str = "127.0.0.1", mqtt_port: int | None = None,
           mqtts: tuple[int, Any] | None = None) -> None:
    """The HTTP API (uvicorn) and, when a port is given, the MQTT device endpoint, on one event loop."""
    import asyncio

    import uvicorn

    from iotfin.app.http import create_app

    async def run() -> None:
        mqtt = secure = None
        if mqtt_port is not None:
            from iotfin.transports.mqtt.server import MqttServer
            from iotfin.transports.mqtt_device import CONCURRENT_TOPICS, DeviceApiHandler

            handler = DeviceApiHandler(ws)
            mqtt = MqttServer(handler, host=host, port=mqtt_port, concurrent_topics=CONCURRENT_TOPICS)
            await mqtt.start()
            console.print(f"MQTT device endpoint on {host}:{mqtt.port}")
            if mqtts is not None:  # MQTT over TLS, X.509 client certificates: same handler, same commits
                secure = MqttServer(handler, host=host, port=mqtts[0], ssl=mqtts[1], concurrent_topics=CONCURRENT_TOPICS)
                await secure.start()
                console.print(f"MQTT over TLS (mqtts) on {host}:{secure.port}")
        console.print(f"serving on http://{host}:{port} (Ctrl-C to stop)")
        from iotfin.transports.revocations import watch_revocations

        watcher = asyncio.create_task(watch_revocations(ws.devices))
        try:
            await uvicorn.Server(uvicorn.Config(create_app(ws), host=host, port=port, log_level="warning")).serve()
        finally:
            watcher.cancel()
            if mqtt is not None:
                await mqtt.stop()
            if secure is not None:
                await secure.stop()
            await ws.device_runtime.aclose()  # buffered device events and state reach the database

    asyncio.run(run())


# --- db -----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: str = "head",
    url: Annotated[str | None, typer.Option(help="Database URL (default IOTFIN_DATABASE_URL or SQLite).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply migrations (SQLite or PostgreSQL) and seed the standard device profiles."""
    from iotfin.app.workspace import Workspace

    settings = load_settings(data_dir=data_dir, database_url=url)
    ws = Workspace(settings)
    if revision == "head":
        current = ws.initialise()
    else:
        from iotfin.db import migrate

        current = migrate.upgrade(ws.engine, revision)
    safe_url = ws.engine.url.render_as_string(hide_password=True)
    _emit({"revision": current, "database": safe_url}, as_json,
          lambda d: out.print(f"database {d['database']} at revision {d['revision']}"))


@db_app.command("current")
def db_current(url: Annotated[str | None, typer.Option()] = None, data_dir: DataDirOpt = None,
               as_json: JsonOpt = False) -> None:
    """Show the applied and the latest migration."""
    from iotfin.db import migrate
    from iotfin.db.engine import make_engine

    engine = make_engine(load_settings(data_dir=data_dir, database_url=url).resolved_database_url)
    data = {"current": migrate.current_revision(engine), "head": migrate.head_revision()}
    _emit(data, as_json, lambda d: out.print(f"current {d['current']} / head {d['head']}"))


# --- sim ----------------------------------------------------------------------------------------


@sim_app.command("generate")
def sim_generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")],
    enterprises: Annotated[int, typer.Option(min=5)] = 300,
    days: Annotated[int, typer.Option(min=1, max=3650)] = 90,
    seed: int = 42,
    devices: Annotated[int | None, typer.Option(help="Target device count (default ~10 per enterprise).")] = None,
    start: Annotated[str | None, typer.Option(help="First simulated day, YYYY-MM-DD.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Generate a deterministic synthetic economy (Parquet) with its ground truth."""
    from iotfin.sim import SimConfig, generate

    kwargs: dict[str, Any] = {"enterprises": enterprises, "days": days, "seed": seed, "devices": devices}
    if start:
        try:
            kwargs["start_date"] = date.fromisoformat(start)
        except ValueError:
            raise ValidationError(f"--start: not a date (YYYY-MM-DD): {start!r}") from None
    with _progress(enabled=not as_json) as progress:
        manifest = generate(SimConfig(**kwargs), out_dir, progress=progress, workers=workers)
    data = {"out": str(out_dir), "counts": manifest["counts"], "config": manifest["config"]}
    _emit(data, as_json, lambda d: out.print(_kv_table(f"generated into {d['out']}", d["counts"])))


@sim_app.command("load")
def sim_load(sim_dir: Annotated[Path, typer.Argument(help="A folder written by `iotfin sim generate`.")],
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Load a simulated economy into the workspace through the platform's ingest path."""
    from iotfin.demo.loader import load_master_data, load_telemetry
    from iotfin.sim import SimDataset

    ws = _workspace(data_dir)
    ws.initialise()
    ds = SimDataset(sim_dir)
    rows = load_master_data(ws, ds)
    with _progress(enabled=not as_json) as progress:
        tally, offered = load_telemetry(ws, ds, progress=progress)
    data = {"rows": rows, "offered": offered, "accepted": tally.accepted, "duplicates": tally.duplicates,
            "rejected": tally.rejected, "rejected_by_reason": dict(tally.rejected_by_reason)}
    _emit(data, as_json, lambda d: out.print(_kv_table("loaded", d)))


# --- telemetry ----------------------------------------------------------------------------------


@telemetry_app.command("query")
def telemetry_query(
    device: Annotated[int, typer.Option("--device", help="Device id.")],
    key: Annotated[str, typer.Option("--key", help="Metric key.")],
    start: Annotated[str, typer.Option("--from", help="Start (ISO date/time, UTC if naive, or epoch ms).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive.")],
    agg: Annotated[str | None, typer.Option("--agg", help="Bucket such as 1m, 15min, 1h, 1d.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A device's readings, or downsampled aggregates, over a time range."""
    try:
        start_ms, end_ms = parse_time(start), parse_time(end)
    except ValueError as exc:
        raise ValidationError(f"--from/--to: {exc}") from None
    if end_ms <= start_ms:
        raise ValidationError("--to must be after --from")
    store = _workspace(data_dir).telemetry
    if agg:
        try:
            table = store.aggregate(device, key, start_ms, end_ms, agg)
        except ValueError as exc:
            raise ValidationError(f"--agg: {exc}") from None
    else:
        table = store.series(device, key, start_ms, end_ms)
    rows = table.to_pylist()
    data = {"device": device, "key": key, "from": start_ms, "to": end_ms, "agg": agg, "rows": rows}

    def render(d: dict[str, Any]) -> None:
        t = Table(title=f"device {device} · {key}", title_justify="left")
        for col in table.column_names:
            t.add_column(col)
        for row in rows:
            t.add_row(*(str(v) for v in row.values()))
        out.print(t)

    _emit(data, as_json, render)


@telemetry_app.command("stats")
def telemetry_stats(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Size of the telemetry store: days, files, data points, bytes per point."""
    ws = _workspace(data_dir)
    data = ws.telemetry.stats() | {"quarantine_by_reason": ws.quarantine.counts("reason")}
    _emit(data, as_json, lambda d: out.print(_kv_table("telemetry store", d)))


# --- devices and serving -------------------------------------------------------------------------


@devices_app.command("create")
def devices_create(
    enterprise: Annotated[int | None, typer.Option(help="Owning enterprise id (default: the default enterprise).")] = None,
    profile: Annotated[str, typer.Option(help="Device profile name.")] = "generic",
    name: Annotated[str | None, typer.Option(help="Unique device name (as gateways and provisioning use).")] = None,
    token: Annotated[str | None, typer.Option(help="Use this access token (e.g. one imported from ThingsBoard).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a device and print its id and access token (works on a fresh workspace)."""
    ws = _workspace(data_dir)
    ws.initialise()
    issued = ws.devices.create(enterprise_id=enterprise, profile=profile, name=name, token=token)
    _emit(issued.to_json(), as_json, lambda d: out.print(_kv_table("device created / 设备已创建", d)))


@devices_app.command("rotate-token")
def devices_rotate(device: Annotated[int, typer.Argument(help="Device id.")],
                   grace: Annotated[int, typer.Option(help="Seconds the old token keeps working.")] = 0,
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Issue a new access token; the old one stops working now or after --grace seconds."""
    token = _workspace(data_dir, schema=True).devices.issue_token(device, grace_s=grace)
    _emit({"id": device, "token": token, "old_tokens_valid_for_s": grace}, as_json,
          lambda d: out.print(_kv_table("token rotated / 令牌已轮换", d)))


@devices_app.command("revoke")
def devices_revoke(device: Annotated[int, typer.Argument(help="Device id.")], data_dir: DataDirOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Revoke every credential of a device."""
    n = _workspace(data_dir, schema=True).devices.revoke_credentials(device)
    _emit({"id": device, "revoked_credentials": n}, as_json, lambda d: out.print(_kv_table("revoked / 已吊销", d)))


@devices_app.command("provisioning")
def devices_provisioning(profile: Annotated[str, typer.Option(help="Profile devices provision into.")],
                         key: Annotated[str, typer.Option(help="Provision device key.")],
                         secret: Annotated[str, typer.Option(help="Provision device secret.")],
                         data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Allow ThingsBoard-style self-provisioning into a profile with this key and secret."""
    ws = _workspace(data_dir)
    ws.initialise()
    ws.devices.set_provisioning(profile, key, secret)
    _emit({"profile": profile, "provision_key": key}, as_json, lambda d: out.print(_kv_table("provisioning", d)))


@app.command()
def serve(
    http_port: Annotated[int | None, typer.Option(help="HTTP port (IOTFIN_HTTP_PORT, default 8000).")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="MQTT port (IOTFIN_MQTT_PORT, default 1883).")] = None,
    mqtts_port: Annotated[int | None, typer.Option(help="Also serve MQTT over TLS on this port (needs --tls-cert/--tls-key).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate chain (PEM) for mqtts.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM) for mqtts.")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help="CA bundle devices' X.509 certificates chain to.")] = None,
    api_workers: Annotated[int, typer.Option(min=0, max=64, help="Also serve the open API (not the device "
                                             "endpoints) from this many extra processes on --api-port.")] = 0,
    api_port: Annotated[int | None, typer.Option(help="Port of the --api-workers processes (default: HTTP port + 1).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the platform on the embedded default: the API and the device endpoints; with
    --api-workers, also the open API from several processes on a second port (partner reads scale
    past one core; see docs/operations.md)."""
    mqtts = None
    if mqtts_port is not None:
        if tls_cert is None or tls_key is None:
            raise ConfigError("--mqtts-port needs --tls-cert and --tls-key")
        from iotfin.transports.mqtt.tls import server_context

        try:
            mqtts = (mqtts_port, server_context(tls_cert, tls_key, tls_client_ca))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the TLS certificate, key or client CA: {exc}") from None
    ws = _workspace(data_dir)
    ws.initialise()
    port = http_port or ws.settings.http_port
    workers = None
    if api_workers:
        import os
        import subprocess
        import sys

        workers = subprocess.Popen([sys.executable, "-m", "iotfin", "serve-api", "--workers", str(api_workers),
                                    "--port", str(api_port or port + 1), "--data-dir", str(ws.data_dir),
                                    "--parent-pid", str(os.getpid())])
        console.print(f"open API: {api_workers} worker processes on {ws.settings.http_host}:{api_port or port + 1}")
    try:
        _serve(ws, port, host=ws.settings.http_host, mqtt_port=mqtt_port or ws.settings.mqtt_port, mqtts=mqtts)
    finally:
        if workers is not None:
            workers.terminate()  # the supervisor (iotfin.app.workers) stops its workers gracefully on SIGTERM
            try:
                workers.wait(timeout=40)
            except subprocess.TimeoutExpired:
                workers.kill()


@app.command("serve-api")
def serve_api(
    port: Annotated[int | None, typer.Option(help="HTTP port (default IOTFIN_HTTP_PORT + 1).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes sharing the port.")] = 2,
    parent_pid: Annotated[int | None, typer.Option(hidden=True, help="Stop when this process ends (`serve` passes it).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The open API alone (partners, console, enterprises; not the device endpoints), from several
    worker processes sharing one port: what lets API reads use more than one core. Background work
    (webhook deliveries, the monitor) and device traffic stay with `iotfin serve` on the same
    workspace. Rate limits are kept per process: a client may reach up to N times its limit."""
    import os

    from iotfin.app.workers import supervise

    ws = _workspace(data_dir, schema=True)  # refuse a database not at the code's schema
    host, port = ws.settings.http_host, port or ws.settings.http_port + 1
    ws.close()
    if data_dir is not None:  # the workers build their workspace from the environment
        os.environ["IOTFIN_DATA_DIR"] = str(data_dir)
    console.print(f"open API on http://{host}:{port}, {workers} worker processes")
    try:
        supervise(host, port, workers, parent_pid)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# --- ledger ---------------------------------------------------------------------------------------


@ledger_app.command("key")
def ledger_key(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The log's verifier key (give it to whoever checks evidence)."""
    ws = _workspace(data_dir, schema=True)
    _emit({"verifier_key": ws.ledger.verifier_key, "origin": ws.ledger.origin}, as_json,
          lambda d: print(d["verifier_key"]))


@ledger_app.command("checkpoint")
def ledger_checkpoint(witness: Annotated[str | None, typer.Option(help="Also ask this tlog-witness (base URL) to cosign.")] = None,
                      data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Sign a checkpoint of the log as it stands (never one inconsistent with an earlier one)."""
    from iotfin.ledger.service import request_cosignature

    ws = _workspace(data_dir, schema=True)
    note = ws.ledger.checkpoint()
    data: dict[str, Any] = {"checkpoint": note}
    if witness:
        data["cosignatures"] = request_cosignature(ws.ledger, witness)
    _emit(data, as_json, lambda d: print(d["checkpoint"] + "".join(d.get("cosignatures", [])), end=""))


@ledger_app.command("prove")
def ledger_prove(
    record: Annotated[str, typer.Argument(help="TYPE:ID, e.g. trade_document:1234 or lien:7.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an evidence bundle for one anchored record."""
    type_name, sep, record_id = record.partition(":")
    if not sep or not record_id:
        raise ValidationError(f"RECORD must look like TYPE:ID, not {record!r}")
    bundle = _workspace(data_dir, schema=True).ledger.prove(type_name, record_id)
    _write_bundle(out_path, bundle, as_json)


@ledger_app.command("prove-reading")
def ledger_prove_reading(
    device: Annotated[int, typer.Option(help="Device id.")],
    key: Annotated[str, typer.Option(help="Metric key.")],
    ts: Annotated[int, typer.Option(help="Reading timestamp, epoch ms.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an evidence bundle for one stored telemetry reading."""
    ws = _workspace(data_dir, schema=True)
    bundle = ws.ledger.prove_reading(ws.settings.resolved_telemetry_dir, device, key, ts)
    _write_bundle(out_path, bundle, as_json)


def _write_bundle(path: Path, bundle: dict[str, Any], as_json: bool) -> None:
    path.write_text(dumps(bundle, indent=True) + "\n")
    _emit({"out": str(path), "leaf_index": bundle["leaf"]["index"]}, as_json,
          lambda d: out.print(f"evidence written to {d['out']} (leaf {d['leaf_index']})"))


@ledger_app.command("verify")
def ledger_verify(
    bundle_path: Annotated[Path, typer.Argument(help="An evidence bundle.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (or @FILE holding it).")],
    as_json: JsonOpt = False,
) -> None:
    """Check a bundle offline, with no database: exit 0 if it holds, 65 with the reason if not."""
    import json

    from iotfin.ledger.evidence import EvidenceInvalid, verify_bundle

    vkey = Path(key[1:]).read_text().strip() if key.startswith("@") else key
    try:
        bundle = json.loads(bundle_path.read_text())
    except (OSError, ValueError) as exc:
        raise EvidenceInvalid(f"cannot read {bundle_path}: {exc}") from None
    proved = verify_bundle(bundle, vkey)
    _emit({"valid": True, **proved}, as_json, lambda d: out.print(f"[green]VALID[/green] {d['record_type']} {d['record_id']} "
                                                               f"is leaf {d['leaf_index']} of checkpoint {d['checkpoint']['size']}"))


@ledger_app.command("audit")
def ledger_audit(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Re-derive the log from its stored leaves and re-check every anchored record: exit 65 if anything changed."""
    ws = _workspace(data_dir, schema=True)
    report = ws.ledger.audit(telemetry_root=ws.settings.resolved_telemetry_dir)
    _emit(report, as_json, lambda d: out.print_json(data=d))
    if not report["ok"]:
        raise typer.Exit(65)


# --- financing registry ---------------------------------------------------------------------------

AssetOpt = Annotated[str, typer.Option("--asset", help='Asset as JSON, e.g. \'{"kind": "vehicle", "vin": "..."}\'.')]


def _asset_key(text: str):  # noqa: ANN202 - lazy import keeps `iotfin --help` fast
    import json

    from pydantic import ValidationError as PydanticError

    from iotfin.api.routers.financing import AssetIn

    try:
        return AssetIn.model_validate(json.loads(text)).key()
    except (json.JSONDecodeError, PydanticError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(f"--asset: {first}") from None


@financing_app.command("place")
def financing_place(
    asset: AssetOpt,
    tenant: Annotated[str, typer.Option(help="Code of the lender placing the lien.")],
    ref: Annotated[str, typer.Option(help="The lender's financing reference.")],
    amount: Annotated[str, typer.Option(help="Amount financed, yuan (decimal).")],
    registration_no: Annotated[str | None, typer.Option(help="Movable-property registration number.")] = None,
    registered_at: Annotated[str | None, typer.Option(help="Registration time (ISO 8601 with offset).")] = None,
    notice_at: Annotated[str | None, typer.Option(help="When the debtor was notified (ISO 8601).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Finance an asset; a second financing is refused (exit 75) with the existing lien."""
    from datetime import datetime

    def when(text: str | None, name: str) -> datetime | None:
        if text is None:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"--{name}: not an ISO 8601 time: {text!r}") from None
        if value.tzinfo is None:
            raise ValidationError(f"--{name}: needs a UTC offset, e.g. 2026-03-01T09:30:00+08:00")
        return value

    key = _asset_key(asset)
    ws = _workspace(data_dir, schema=True)
    lien = ws.financing.finance(key, ws.financing.tenant_id(tenant), ref, amount, registration_no=registration_no,
                                registered_at=when(registered_at, "registered-at"), notice_at=when(notice_at, "notice-at"))
    _emit(lien.to_json(), as_json, lambda d: out.print(_kv_table("lien placed / 已登记质押", d)))


@financing_app.command("release")
def financing_release(lien: Annotated[int, typer.Argument(help="Lien id.")],
                      reason: Annotated[str, typer.Option(help="Why, e.g. repaid in full.")],
                      data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Release a lien (repayment, cancellation)."""
    released = _workspace(data_dir, schema=True).financing.release(lien, reason)
    _emit(released.to_json(), as_json, lambda d: out.print(_kv_table("lien released / 已解除", d)))


@financing_app.command("status")
def financing_status(asset: AssetOpt, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """An asset's fingerprint, active lien, lien history and every financing attempt."""
    data = _workspace(data_dir, schema=True).financing.status(_asset_key(asset))
    _emit(data, as_json, lambda d: out.print_json(data=d))


from iotfin.cli.devices import register as _register_device_commands  # noqa: E402 - after the helpers it uses

_register_device_commands(devices_app)


def main() -> None:
    """Entry point: typed errors become one line on stderr and a meaningful exit code."""
    try:
        app()
    except IotfinError as exc:
        print(f"iotfin: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
