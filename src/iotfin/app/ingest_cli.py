"""`iotfin serve-ingest` (the ingest worker supervisor; `iotfin serve --ingest-workers N` starts it) and
`iotfin broker …` (device credentials in an MQTT broker). See docs/ingest-scale.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import orjson
import typer

from iotfin.cli import app as cli
from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt
from iotfin.core.errors import ConfigError

broker_cli = typer.Typer(help="Device credentials in an MQTT broker in front of iotfin (broker mode).", no_args_is_help=True)
cli.add_typer(broker_cli, name="broker")

PasswdOpt = Annotated[Path, typer.Option(help="Mosquitto's password file (password_file in its config).")]
PidOpt = Annotated[Path | None, typer.Option(help="Mosquitto's pid file: the broker is reloaded (SIGHUP) after a change.")]


def parse_broker(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--broker must be HOST:PORT, not {address!r}")
    return host, int(port)


@cli.command("serve-ingest")
def serve_ingest(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Ingest worker processes.")] = 2,
    http_port: Annotated[int | None, typer.Option(help="Direct mode: the HTTP port shared with `iotfin serve` (device API).")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="Direct mode: the MQTT port the workers share (default IOTFIN_MQTT_PORT).")] = None,
    broker: Annotated[str | None, typer.Option(help="Broker mode: consume from this MQTT broker (HOST:PORT) instead of listening.")] = None,
    broker_username: Annotated[str | None, typer.Option(envvar="IOTFIN_BROKER_USERNAME", help="The workers' broker account.")] = None,
    broker_password: Annotated[str | None, typer.Option(envvar="IOTFIN_BROKER_PASSWORD", help="Its password (better in the environment).")] = None,
    broker_passwd_file: Annotated[Path | None, typer.Option(help="Broker mode with Mosquitto: its password file, "
                                                             "from which revoked devices are removed.")] = None,
    broker_pid_file: PidOpt = None,
    parent_pid: Annotated[int | None, typer.Option(hidden=True, help="Stop when this process ends (`serve` passes it).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Device ingest from several processes: sharing the MQTT (and HTTP) port with SO_REUSEPORT, or
    consuming from an MQTT broker with a shared subscription. One telemetry store, one ledger."""
    from iotfin.app.ingest_workers import (  # lazy: start-up time of the command line
        AnchorRepair,
        BrokerConfig,
        IngestConfig,
        RevocationSync,
        supervise,
        ticks,
    )

    ws = kit.workspace(data_dir, schema=True)
    host = ws.settings.http_host
    sync = None
    if broker is not None:
        bhost, bport = parse_broker(broker)
        config = IngestConfig(host, None, None, BrokerConfig(bhost, bport, broker_username, broker_password))
        if broker_passwd_file is not None:
            from iotfin.transports.broker import MosquittoAccounts  # lazy: paho loads only in broker mode

            sync = RevocationSync(ws.devices, MosquittoAccounts(broker_passwd_file, broker_pid_file))
        what = f"consuming from the broker at {broker}"
    else:
        config = IngestConfig(host, http_port, mqtt_port or ws.settings.mqtt_port)
        what = f"MQTT on {host}:{config.mqtt_port}" + (f", HTTP on {host}:{http_port}" if http_port else "")
    run_dir = ws.data_dir / "run"
    # the supervisor keeps its workspace: it anchors batches a killed worker left unanchored
    repair = AnchorRepair(ws.ledger, ws.settings.resolved_telemetry_dir)
    tick = ticks(repair, *([sync] if sync is not None else []))
    if data_dir is not None:  # the workers build their workspace from the environment
        os.environ["IOTFIN_DATA_DIR"] = str(data_dir)
    kit.console.print(f"{workers} ingest worker processes, {what}")
    try:
        supervise(workers, config, run_dir, parent_pid, on_tick=tick)
    except OSError as exc:
        raise ConfigError(f"cannot listen on the device ports: {exc.strerror or exc}") from None
    finally:
        ws.close()


@broker_cli.command("provision")
def broker_provision(device_id: int, passwd_file: PasswdOpt, pid_file: PidOpt = None, data_dir: DataDirOpt = None) -> None:
    """Give a device credentials at the broker (a new password); prints username, password and topic."""
    from iotfin.transports.broker import MosquittoAccounts  # lazy: paho loads only in broker mode

    ws = kit.workspace(data_dir)
    if ws.devices.device(device_id) is None:
        raise ConfigError(f"no device {device_id}")
    typer.echo(orjson.dumps(MosquittoAccounts(passwd_file, pid_file).provision(device_id)).decode())


@broker_cli.command("revoke")
def broker_revoke(device_id: int, passwd_file: PasswdOpt, pid_file: PidOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke every credential of the device in iotfin and remove it from the broker now (`serve-ingest
    --broker-passwd-file` also does it within a second for revocations made any other way)."""
    from iotfin.transports.broker import MosquittoAccounts  # lazy: paho loads only in broker mode

    ws = kit.workspace(data_dir)
    ws.devices.revoke_credentials(device_id)
    removed = MosquittoAccounts(passwd_file, pid_file).revoke(device_id)
    typer.echo(orjson.dumps({"device_id": device_id, "removed_from_broker": bool(removed)}).decode())


@broker_cli.command("acl")
def broker_acl(ingest_username: Annotated[str, typer.Argument(help="The ingest workers' broker account.")] = "iotfin-ingest") -> None:
    """Print the Mosquitto ACL file: each device writes only its own topic."""
    from iotfin.transports.broker import mosquitto_acl  # lazy: paho loads only in broker mode

    typer.echo(mosquitto_acl(ingest_username), nl=False)
