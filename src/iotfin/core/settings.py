"""Settings from the environment (IOTFIN_*) and an optional TOML file, with embedded defaults.

Precedence: explicit keyword arguments > environment > config file > defaults. The config file is
`$IOTFIN_CONFIG` if set, else `./iotfin.toml` if present. A wrong setting raises ConfigError whose
one-line message names the setting, so the CLI can fail at start with exactly that line.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from iotfin.core.errors import ConfigError

ENV_PREFIX = "IOTFIN_"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the optional config file; a missing explicit file or bad TOML is a ConfigError."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        self._data = _load_config_file()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _load_config_file() -> dict[str, Any]:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    path = Path(explicit) if explicit else Path("iotfin.toml")
    if not path.exists():
        if explicit:
            raise ConfigError(f"IOTFIN_CONFIG: config file not found: {path}")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"IOTFIN_CONFIG: {path} is not valid TOML: {exc}") from exc
    # Accept both a flat file and an [iotfin] table.
    return data.get("iotfin", data)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    data_dir: Path = Field(default=Path(".iotfin"), description="workspace: SQLite file and telemetry")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    telemetry_dir: Path | None = Field(default=None, description="columnar telemetry store; default data_dir/telemetry")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    telemetry_retention_days: int = Field(default=3650, ge=1)
    # Open API (docs/api.md): partner token lifetime, per-client rate limit, request body cap.
    token_ttl_s: int = Field(default=900, ge=30, le=86_400, description="lifetime of issued access tokens")
    rate_limit_per_s: float = Field(default=50.0, gt=0, description="sustained requests per second per client")
    rate_limit_burst: int = Field(default=100, ge=1, description="requests a client may send at once")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="largest request body accepted")
    api_threads: int = Field(default=8, ge=1, le=200, description="threads running the API's blocking work (database "
                             "reads and writes); more than a few per core only contend for the GIL")
    webhook_allow_hosts: str = Field(default="", description="host names or IP networks (CIDR), comma-separated, "
                                     "that webhook URLs may reach although not public, and over plain http "
                                     "(a local receiver in tests and demos); empty: none")
    # Industry indices (docs/industry.md): the fewest firms a served index cell may come from.
    industry_min_firms: int = Field(default=5, ge=2, le=1000, description="an industry index cell is served only "
                                    "when at least this many firms contribute to it")
    # Customer protection (docs/protection.md): complaint deadlines.
    complaint_ack_hours: int = Field(default=24, ge=1, description="a complaint must be acknowledged within")
    complaint_resolve_days: int = Field(default=15, ge=1, description="a complaint must be resolved within")
    # Offers and booking (docs/lending.md#offers-and-booking).
    offer_validity_days: int = Field(default=15, ge=1, le=365, description="an approved decision's offer may be "
                                     "accepted for this many days")
    lending_rate_ceiling: str = Field(default="0.24", pattern=r"^0(\.\d{1,6})?$|^1(\.0{1,6})?$",
                                      description="legal ceiling of a loan's annual contract rate (a fraction); "
                                      "a booking above it is refused")
    # The business calendar and the daily close (docs/operations.md#the-daily-close).
    simulation: bool = Field(default=False, description="simulation mode: the close may run for dates after "
                             "today (demos, simulations); never on a production workspace")
    close_at: str = Field(default="00:30", description="local time (Asia/Shanghai, HH:MM) at which `iotfin serve` "
                          "closes the books through yesterday")
    repayment_due_notice_days: int = Field(default=3, ge=0, le=60, description="repayment.due is sent this many "
                                           "days before an instalment falls due")
    # Scheduled re-rating (docs/risk.md#re-rating).
    rerate_at: str = Field(default="02:00", description="local time (Asia/Shanghai, HH:MM) at which `iotfin serve` "
                           "re-rates enterprises with active loans or open consents")

    # Digital debt vouchers (docs/receivables.md): term limit (the rule: six months in principle, a
    # year at most), the smallest part a split may leave, the deepest chain of splits.
    receivable_max_term_months: int = Field(default=6, ge=1, le=12, description="a voucher's payment term may "
                                            "be at most this many months (hard limit 12)")
    receivable_min_part: str = Field(default="100.00", pattern=r"^\d{1,12}(\.\d{1,2})?$",
                                     description="smallest voucher part a split may leave, in yuan")
    receivable_max_depth: int = Field(default=8, ge=1, le=64, description="deepest chain of splits of a voucher")

    # The console (docs/console.md): sessions and sign-in throttling.
    console_idle_minutes: int = Field(default=30, ge=1, le=1440, description="a console session idle this long "
                                      "ends; the user signs in again")
    console_session_hours: int = Field(default=12, ge=1, le=168, description="a console session ends this long "
                                       "after sign-in, however active")
    console_max_failed_sign_ins: int = Field(default=5, ge=1, le=100, description="failed sign-ins for one "
                                             "username within 15 minutes before further attempts are refused")
    console_secure_cookie: bool | None = Field(default=None, description="mark the session cookie Secure; "
                                               "default: when the request came over TLS (https)")

    @field_validator("close_at", "rerate_at")
    @classmethod
    def _hh_mm(cls, text: str) -> str:
        hh, sep, mm = text.strip().partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
            raise ValueError("must be a local time HH:MM, 00:00 to 23:59")
        return f"{int(hh):02d}:{mm}"

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'iotfin.db').resolve()}"

    @property
    def resolved_telemetry_dir(self) -> Path:
        return self.telemetry_dir or self.data_dir / "telemetry"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning any validation failure into a one-line ConfigError naming the setting."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        env_name = f"{ENV_PREFIX}{name.upper()}"
        shown = err.get("input")
        raise ConfigError(f"{env_name}: {err['msg']} (got {shown!r})") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
