"""`iotfin clients ...`, `iotfin users ...` and `iotfin protection ...`: identity and protection
administration from the operator's shell (the same services the API uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt, JsonOpt

clients_app = typer.Typer(help="Partner API clients (OAuth2 client credentials) and token signing keys.",
                          no_args_is_help=True)
users_app = typer.Typer(help="Console users and their roles.", no_args_is_help=True)
protection_app = typer.Typer(help="Customer protection: personal-data keys, overdue complaints.", no_args_is_help=True)



def _ws(data_dir: Path | None) -> Any:
    return kit.workspace(data_dir, schema=True)


@clients_app.command("create")
def clients_create(
    scopes: Annotated[str, typer.Option("--scopes", help="Space- or comma-separated scopes, e.g. 'financing:read financing:write'.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Code of the lender (or platform tenant) it acts for.")] = None,
    enterprise: Annotated[int | None, typer.Option("--enterprise", help="Enterprise id it acts for, instead of a tenant.")] = None,
    name: Annotated[str, typer.Option(help="A name to recognise the client by.")] = "partner system",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a partner system; prints its client id and secret (the secret is shown only now)."""
    created = _ws(data_dir).identity.create_client(name, scopes, tenant=tenant, enterprise_id=enterprise)
    kit.show("client created / 已创建客户端 — keep the secret, it is not shown again / 请妥善保存密钥", created, as_json)


@clients_app.command("deactivate")
def clients_deactivate(client_id: Annotated[str, typer.Argument(help="Client id (ic_...).")], data_dir: DataDirOpt = None,
                       as_json: JsonOpt = False) -> None:
    """Stop a client getting tokens (tokens already issued expire within their lifetime)."""
    _ws(data_dir).identity.deactivate_client(client_id)
    kit.show("client deactivated / 已停用", {"client_id": client_id}, as_json)


@clients_app.command("rotate-signing-key")
def clients_rotate_key(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Sign new tokens with a fresh key; tokens signed with the old keys keep verifying until retired."""
    keys = _ws(data_dir).tokens.keys
    kid = keys.rotate()
    kit.show("token signing key rotated / 令牌签名密钥已轮换", {"active": kid, "keys": keys.kids()}, as_json)


@clients_app.command("retire-signing-key")
def clients_retire_key(kid: Annotated[str, typer.Argument(help="Key id to remove.")], data_dir: DataDirOpt = None,
                       as_json: JsonOpt = False) -> None:
    """Remove an old signing key: tokens it signed stop verifying at once."""
    keys = _ws(data_dir).tokens.keys
    keys.retire(kid)
    kit.show("signing key retired / 已停用签名密钥", {"retired": kid, "keys": keys.kids()}, as_json)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Login name.")],
    roles: Annotated[str, typer.Option("--roles", help="Comma-separated: risk_officer, approver, auditor, platform_admin, enterprise_admin.")],
    password: Annotated[str, typer.Option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                                          envvar="IOTFIN_NEW_USER_PASSWORD", help="At least 12 characters.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Code of the user's lender or platform tenant.")] = None,
    enterprise: Annotated[int | None, typer.Option("--enterprise", help="Enterprise id (enterprise_admin users).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a console user with roles (password hashed with argon2id)."""
    created = _ws(data_dir).identity.create_user(username, password, [r.strip() for r in roles.split(",") if r.strip()],
                                                 tenant=tenant, enterprise_id=enterprise, display_name=name)
    kit.show("user created / 已创建用户", created, as_json)


@protection_app.command("rotate-key")
def protection_rotate_key(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Encrypt new personal data under a fresh key (then run `reencrypt` for the existing data)."""
    keys = _ws(data_dir).pii.keys
    kid = keys.rotate()
    kit.show("personal-data key rotated / 个人信息加密密钥已轮换", {"active": kid, "keys": keys.kids()}, as_json)


@protection_app.command("reencrypt")
def protection_reencrypt(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Re-encrypt every personal field still under an older key; afterwards old keys can be retired."""
    ws = _ws(data_dir)
    counts = ws.protection.reencrypt()
    kit.show("re-encrypted / 已重新加密", counts | {"active_key": ws.pii.keys.active_kid}, as_json)


@protection_app.command("retire-key")
def protection_retire_key(kid: Annotated[str, typer.Argument(help="Key id to remove.")], data_dir: DataDirOpt = None,
                          as_json: JsonOpt = False) -> None:
    """Remove an old personal-data key (run `reencrypt` first, or what it encrypted is lost)."""
    ws = _ws(data_dir)
    leftover = {k: v for k, v in ws.protection.reencrypt().items() if v}
    keys = ws.pii.keys
    keys.retire(kid)
    kit.show("key retired / 已停用密钥", {"retired": kid, "reencrypted_first": leftover, "keys": keys.kids()}, as_json)
