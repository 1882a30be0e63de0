"""`iotfin devices ...` commands of this context: provenance keys, events, status, claiming.

Registered on the `devices` sub-app by `iotfin.cli.root` (`register(devices_app)`); the shared helpers
(workspace, output) are imported from there lazily, so `iotfin --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Workspace folder (IOTFIN_DATA_DIR).")]
DeviceArg = Annotated[int, typer.Argument(help="Device id.")]


def _show(title: str, data: Any, as_json: bool) -> None:
    from iotfin.cli.root import root as cli

    cli._emit(data, as_json, lambda d: cli.out.print(cli._kv_table(title, d)))


def register(devices_app: typer.Typer) -> None:  # noqa: C901 - one nested function per command
    @devices_app.command("hmac-secret")
    def hmac_secret(device: DeviceArg,
                    require: Annotated[bool | None, typer.Option("--require/--no-require",
                                                                 help="Also require authenticated messages.")] = None,
                    data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """Issue (or rotate) the device's HMAC-SHA256 secret; printed once, give it to the device."""
        from iotfin.cli.root import root as cli

        ws = cli._workspace(data_dir, schema=True)
        secret = ws.device_runtime.guard.issue_hmac_secret(device, required=require)
        _show("HMAC secret issued / 已签发消息认证密钥", {"id": device, "hmac_secret": secret,
                                                       **_flags(ws, device)}, as_json)

    @devices_app.command("public-key")
    def public_key(device: DeviceArg, key: Annotated[str, typer.Argument(help="Ed25519 public key, 64 hex characters.")],
                   require: Annotated[bool | None, typer.Option("--require/--no-require",
                                                                help="Also require authenticated messages.")] = None,
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """Register a gateway's (or device's) Ed25519 public key for batch signatures."""
        from iotfin.cli.root import root as cli

        ws = cli._workspace(data_dir, schema=True)
        ws.device_runtime.guard.register_public_key(device, key, required=require)
        _show("public key registered / 已登记公钥", _flags(ws, device), as_json)

    @devices_app.command("require-auth")
    def require_auth(device: Annotated[int | None, typer.Option(help="Device id.")] = None,
                     profile: Annotated[str | None, typer.Option(help="Every device of this profile.")] = None,
                     off: Annotated[bool, typer.Option("--off", help="Stop requiring it.")] = False,
                     data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """Require authenticated (HMAC or signed) messages from a device or a whole profile."""
        from iotfin.cli.root import root as cli
        from iotfin.core.errors import ValidationError

        if (device is None) == (profile is None):
            raise ValidationError("name exactly one of --device or --profile")
        ws = cli._workspace(data_dir, schema=True)
        guard = ws.device_runtime.guard
        if device is not None:
            guard.set_required(device, not off)
            _show("authentication requirement / 消息认证要求", _flags(ws, device), as_json)
        else:
            assert profile is not None
            guard.set_profile_required(profile, not off)
            _show("authentication requirement / 消息认证要求", {"profile": profile, "required": not off}, as_json)

    @devices_app.command("x509")
    def x509(device: DeviceArg, cert: Annotated[Path, typer.Option(help="The device's certificate (PEM or DER).")],
             data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """Register an X.509 certificate the device authenticates with over MQTT/TLS (mqtts)."""
        from iotfin.cli.root import root as cli
        from iotfin.core.errors import NotFound

        try:
            data = cert.read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read {cert}: {exc.strerror}") from None
        fingerprint = cli._workspace(data_dir, schema=True).devices.set_x509(device, data)
        _show("X.509 credential / X.509 证书凭据", {"id": device, "cert_sha256": fingerprint}, as_json)

    @devices_app.command("provenance")
    def provenance(device: DeviceArg, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """The device's message-authentication set-up and counter high-water mark."""
        from iotfin.cli.root import root as cli

        _show("provenance / 数据来源认证", _flags(cli._workspace(data_dir, schema=True), device), as_json)

    @devices_app.command("events")
    def events(device: Annotated[int | None, typer.Option(help="Device id (default: every device).")] = None,
               kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
               tamper: Annotated[bool, typer.Option("--tamper", help="Only tamper signals.")] = False,
               limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
               data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """Device events, newest first: tamper signals, connect/disconnect, online/offline, claims."""
        from rich.table import Table

        from iotfin.cli.root import root as cli

        rows = cli._workspace(data_dir, schema=True).device_runtime.events.query(device, kind, tamper, limit=limit)

        def render(d: dict[str, Any]) -> None:
            table = Table("time / 时间", "device / 设备", "kind / 类型", "detail / 详情", title="device events / 设备事件")
            for e in d["events"]:
                table.add_row(e["at"], str(e["device_id"]), ("[red]" if e["tamper"] else "") + e["kind"],
                              cli.dumps(e["detail"]))
            cli.out.print(table)

        cli._emit({"device_id": device, "events": rows}, as_json, render)

    @devices_app.command("status")
    def status(device: Annotated[int, typer.Option(help="Device id.")], data_dir: DataDirOpt = None,
               as_json: JsonOpt = False) -> None:
        """Online/offline state, last activity, last connect and disconnect."""
        from iotfin.cli.root import root as cli
        from iotfin.devices.state import device_status

        ws = cli._workspace(data_dir, schema=True)
        _show("device status / 设备状态", device_status(ws.engine, ws.registry, device), as_json)

    @devices_app.command("claim")
    def claim(name: Annotated[str, typer.Option(help="The device's name.")],
              secret: Annotated[str, typer.Option(help="The claim secret the device announced.")] = "",
              enterprise: Annotated[int, typer.Option(help="The claiming enterprise's id.")] = 0,
              data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
        """Claim a device for an enterprise with the secret the device announced (ThingsBoard claiming)."""
        from iotfin.cli.root import root as cli
        from iotfin.devices import claims

        ws = cli._workspace(data_dir, schema=True)
        result = claims.claim(ws.engine, ws.device_runtime.events, name, secret, enterprise)
        _show("device claimed / 设备已认领", result, as_json)


def _flags(ws: Any, device: int) -> dict[str, Any]:
    return ws.device_runtime.guard.describe(device)
