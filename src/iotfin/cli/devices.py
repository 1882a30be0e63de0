"""`iotfin devices …`: create, credentials, provisioning, provenance keys, events, status, claiming."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt
from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.jsonout import dumps

devices_app = typer.Typer(help="Devices: create, credentials, provisioning.", no_args_is_help=True)
DeviceArg = Annotated[int, typer.Argument(help="Device id.")]


@devices_app.command("create")
def devices_create(
    site: Annotated[int | None, typer.Option(help="The site it is installed at (its enterprise owns the device).")] = None,
    enterprise: Annotated[int | None, typer.Option(help="Owning enterprise id (with --site: the site's).")] = None,
    profile: Annotated[str, typer.Option(help="Device profile name.")] = "generic",
    name: Annotated[str | None, typer.Option(help="Unique device name (as gateways and provisioning use).")] = None,
    token: Annotated[str | None, typer.Option(help="Use this access token (e.g. one imported from ThingsBoard).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a device at a site (--site) or for an enterprise (--enterprise) and print its id and
    access token. Onboard the enterprise and its site first: `iotfin enterprises create`, `iotfin
    sites create`."""
    if site is None and enterprise is None:
        raise ValidationError("say where the device is: --site SITE_ID (or --enterprise ENTERPRISE_ID); onboard "
                              "the enterprise and its site first with `iotfin enterprises create` and `iotfin sites "
                              "create` / 请指定设备所在站点或企业", field="site")
    ws = kit.workspace(data_dir)
    ws.initialise()
    issued = ws.devices.create(enterprise_id=enterprise, profile=profile, name=name, token=token, site_id=site)
    kit.emit(issued.to_json(), as_json, lambda d: kit.out.print(kit.kv_table("device created / 设备已创建", d)))


@devices_app.command("rotate-token")
def devices_rotate(device: Annotated[int, typer.Argument(help="Device id.")],
                   grace: Annotated[int, typer.Option(help="Seconds the old token keeps working.")] = 0,
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Issue a new access token; the old one stops working now or after --grace seconds."""
    token = kit.workspace(data_dir, schema=True).devices.issue_token(device, grace_s=grace)
    kit.emit({"id": device, "token": token, "old_tokens_valid_for_s": grace}, as_json,
          lambda d: kit.out.print(kit.kv_table("token rotated / 令牌已轮换", d)))


@devices_app.command("revoke")
def devices_revoke(device: Annotated[int, typer.Argument(help="Device id.")], data_dir: DataDirOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Revoke every credential of a device."""
    n = kit.workspace(data_dir, schema=True).devices.revoke_credentials(device)
    kit.emit({"id": device, "revoked_credentials": n}, as_json, lambda d: kit.out.print(kit.kv_table("revoked / 已吊销", d)))


@devices_app.command("provisioning")
def devices_provisioning(profile: Annotated[str, typer.Option(help="Profile devices provision into.")],
                         key: Annotated[str, typer.Option(help="Provision device key.")],
                         secret: Annotated[str, typer.Option(help="Provision device secret.")],
                         data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Allow ThingsBoard-style self-provisioning into a profile with this key and secret."""
    ws = kit.workspace(data_dir)
    ws.initialise()
    ws.devices.set_provisioning(profile, key, secret)
    kit.emit({"profile": profile, "provision_key": key}, as_json, lambda d: kit.out.print(kit.kv_table("provisioning", d)))


@devices_app.command("hmac-secret")
def hmac_secret(device: DeviceArg,
                require: Annotated[bool | None, typer.Option("--require/--no-require",
                                                             help="Also require authenticated messages.")] = None,
                data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Issue (or rotate) the device's HMAC-SHA256 secret; printed once, give it to the device."""
    ws = kit.workspace(data_dir, schema=True)
    secret = ws.device_runtime.guard.issue_hmac_secret(device, required=require)
    kit.show("HMAC secret issued / 已签发消息认证密钥", {"id": device, "hmac_secret": secret,
                                                   **_flags(ws, device)}, as_json)

@devices_app.command("public-key")
def public_key(device: DeviceArg, key: Annotated[str, typer.Argument(help="Ed25519 public key, 64 hex characters.")],
               require: Annotated[bool | None, typer.Option("--require/--no-require",
                                                            help="Also require authenticated messages.")] = None,
               data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Register a gateway's (or device's) Ed25519 public key for batch signatures."""
    ws = kit.workspace(data_dir, schema=True)
    ws.device_runtime.guard.register_public_key(device, key, required=require)
    kit.show("public key registered / 已登记公钥", _flags(ws, device), as_json)

@devices_app.command("require-auth")
def require_auth(device: Annotated[int | None, typer.Option(help="Device id.")] = None,
                 profile: Annotated[str | None, typer.Option(help="Every device of this profile.")] = None,
                 off: Annotated[bool, typer.Option("--off", help="Stop requiring it.")] = False,
                 data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Require authenticated (HMAC or signed) messages from a device or a whole profile."""

    if (device is None) == (profile is None):
        raise ValidationError("name exactly one of --device or --profile")
    ws = kit.workspace(data_dir, schema=True)
    guard = ws.device_runtime.guard
    if device is not None:
        guard.set_required(device, not off)
        kit.show("authentication requirement / 消息认证要求", _flags(ws, device), as_json)
    else:
        assert profile is not None
        guard.set_profile_required(profile, not off)
        kit.show("authentication requirement / 消息认证要求", {"profile": profile, "required": not off}, as_json)

@devices_app.command("x509")
def x509(device: DeviceArg, cert: Annotated[Path, typer.Option(help="The device's certificate (PEM or DER).")],
         data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Register an X.509 certificate the device authenticates with over MQTT/TLS (mqtts)."""

    try:
        data = cert.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {cert}: {exc.strerror}") from None
    fingerprint = kit.workspace(data_dir, schema=True).devices.set_x509(device, data)
    kit.show("X.509 credential / X.509 证书凭据", {"id": device, "cert_sha256": fingerprint}, as_json)

@devices_app.command("provenance")
def provenance(device: DeviceArg, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The device's message-authentication set-up and counter high-water mark."""
    kit.show("provenance / 数据来源认证", _flags(kit.workspace(data_dir, schema=True), device), as_json)

@devices_app.command("events")
def events(device: Annotated[int | None, typer.Option(help="Device id (default: every device).")] = None,
           kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
           tamper: Annotated[bool, typer.Option("--tamper", help="Only tamper signals.")] = False,
           limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
           data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Device events, newest first: tamper signals, connect/disconnect, online/offline, claims."""

    rows = kit.workspace(data_dir, schema=True).device_runtime.events.query(device, kind, tamper, limit=limit)

    def render(d: dict[str, Any]) -> None:
        table = Table("time / 时间", "device / 设备", "kind / 类型", "detail / 详情", title="device events / 设备事件")
        for e in d["events"]:
            table.add_row(e["at"], str(e["device_id"]), ("[red]" if e["tamper"] else "") + e["kind"],
                          dumps(e["detail"]))
        kit.out.print(table)

    kit.emit({"device_id": device, "events": rows}, as_json, render)

@devices_app.command("status")
def status(device: Annotated[int, typer.Option(help="Device id.")], data_dir: DataDirOpt = None,
           as_json: JsonOpt = False) -> None:
    """Online/offline state, last activity, last connect and disconnect."""
    from iotfin.devices.state import device_status  # lazy: the command line starts without it

    ws = kit.workspace(data_dir, schema=True)
    kit.show("device status / 设备状态", device_status(ws.engine, ws.registry, device), as_json)

@devices_app.command("claim")
def claim(name: Annotated[str, typer.Option(help="The device's name.")],
          secret: Annotated[str, typer.Option(help="The claim secret the device announced.")] = "",
          enterprise: Annotated[int, typer.Option(help="The claiming enterprise's id.")] = 0,
          data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Claim a device for an enterprise with the secret the device announced (ThingsBoard claiming)."""
    from iotfin.devices import claims  # lazy: the command line starts without it

    ws = kit.workspace(data_dir, schema=True)
    result = claims.claim(ws.engine, ws.device_runtime.events, name, secret, enterprise)
    kit.show("device claimed / 设备已认领", result, as_json)


def _flags(ws: Any, device: int) -> dict[str, Any]:
    return ws.device_runtime.guard.describe(device)
