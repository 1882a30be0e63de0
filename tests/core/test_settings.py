"""Settings: defaults < config file < IOTFIN_* environment < explicit arguments; a wrong one is a
one-line ConfigError naming IOTFIN_<NAME>."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotfin.core import errors
from iotfin.core.errors import ConfigError, IotfinError
from iotfin.core.settings import Settings, get_settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No IOTFIN_* from the outer environment, and a working directory without an iotfin.toml."""
    for name in list(os.environ):
        if name.upper().startswith("IOTFIN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(**overrides)
    message = str(excinfo.value)
    assert "\n" not in message, message
    assert excinfo.value.exit_code == 78
    return message


def test_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.data_dir == Path(".iotfin") and s.database_url is None and s.telemetry_dir is None
    assert (s.http_host, s.http_port, s.mqtt_port, s.log_level, s.telemetry_retention_days) == (
        "127.0.0.1", 8000, 1883, "INFO", 3650)
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve() / '.iotfin' / 'iotfin.db'}"
    assert s.resolved_telemetry_dir == Path(".iotfin") / "telemetry"


def test_environment_overrides_every_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "IOTFIN_DATA_DIR": str(tmp_path / "data"),
        "IOTFIN_DATABASE_URL": "postgresql+psycopg://u@db:5432/iotfin",
        "IOTFIN_TELEMETRY_DIR": str(tmp_path / "tele"),
        "IOTFIN_HTTP_HOST": "0.0.0.0",
        "IOTFIN_HTTP_PORT": "9000",
        "IOTFIN_MQTT_PORT": "8883",
        "IOTFIN_LOG_LEVEL": "DEBUG",
        "IOTFIN_TELEMETRY_RETENTION_DAYS": "365",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.data_dir == tmp_path / "data"
    assert s.resolved_database_url == "postgresql+psycopg://u@db:5432/iotfin"
    assert s.resolved_telemetry_dir == tmp_path / "tele"
    assert (s.http_host, s.http_port, s.mqtt_port, s.log_level, s.telemetry_retention_days) == (
        "0.0.0.0", 9000, 8883, "DEBUG", 365)


def test_telemetry_and_database_default_inside_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IOTFIN_DATA_DIR", str(tmp_path / "ws"))
    s = load_settings()
    assert s.resolved_telemetry_dir == tmp_path / "ws" / "telemetry"
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'ws' / 'iotfin.db').resolve()}"


@pytest.mark.parametrize("table", [False, True])
def test_config_file_named_by_iotfin_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, table: bool) -> None:
    body = 'http_port = 7000\nlog_level = "WARNING"\ndata_dir = "from-file"\n'
    path = tmp_path / "conf" / "custom.toml"
    path.parent.mkdir()
    path.write_text(("[iotfin]\n" if table else "") + body)
    monkeypatch.setenv("IOTFIN_CONFIG", str(path))
    s = load_settings()
    assert (s.http_port, s.log_level, s.data_dir) == (7000, "WARNING", Path("from-file"))
    assert s.mqtt_port == 1883  # what the file does not set keeps its default


def test_iotfin_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "iotfin.toml").write_text("[iotfin]\nmqtt_port = 1884\n")
    assert load_settings().mqtt_port == 1884


def test_precedence_arguments_then_environment_then_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "iotfin.toml").write_text('http_port = 7001\nmqtt_port = 7101\nhttp_host = "file-host"\n')
    monkeypatch.setenv("IOTFIN_HTTP_PORT", "7002")
    monkeypatch.setenv("IOTFIN_MQTT_PORT", "7102")
    s = load_settings(http_port=7003)
    assert (s.http_port, s.mqtt_port, s.http_host) == (7003, 7102, "file-host")
    # An option left unset (None) does not hide the environment.
    assert load_settings(http_port=None, data_dir=None).http_port == 7002


def test_get_settings_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTFIN_HTTP_PORT", "9100")
    first = get_settings()
    monkeypatch.setenv("IOTFIN_HTTP_PORT", "9200")
    assert get_settings() is first and first.http_port == 9100
    get_settings.cache_clear()
    assert get_settings().http_port == 9200


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("HTTP_PORT", "70000", "less than or equal to 65535"),
    ("HTTP_PORT", "0", "greater than or equal to 1"),
    ("HTTP_PORT", "eighty", "valid integer"),
    ("HTTP_PORT", "", "valid integer"),
    ("HTTP_PORT", "80\n81", "valid integer"),  # still one line: the input is shown as a repr
    ("MQTT_PORT", "-1", "greater than or equal to 1"),
    ("LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ("LOG_LEVEL", "debug", "'DEBUG'"),
    ("DATABASE_URL", "mysql://x@y/z", "sqlite:/// or postgresql+psycopg://"),
    ("TELEMETRY_RETENTION_DAYS", "0", "greater than or equal to 1"),
])
def test_a_wrong_environment_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                         fragment: str) -> None:
    monkeypatch.setenv(f"IOTFIN_{name}", value)
    message = config_error()
    assert message.startswith(f"IOTFIN_{name}: "), message
    assert fragment in message and repr(value) in message


def test_a_wrong_argument_names_the_setting() -> None:
    assert config_error(http_port=123456).startswith("IOTFIN_HTTP_PORT: ")
    assert config_error(no_such_setting=1).startswith("IOTFIN_NO_SUCH_SETTING: ")


def test_a_wrong_value_in_the_config_file_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "iotfin.toml").write_text('[iotfin]\nhttp_port = "x"\n')
    assert config_error().startswith("IOTFIN_HTTP_PORT: ")


def test_an_unknown_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "iotfin.toml").write_text("http_prot = 8080\n")  # a typo must not be silently ignored
    message = config_error()
    assert message.startswith("IOTFIN_HTTP_PROT: ") and "8080" in message


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "iotfin.toml"
    monkeypatch.setenv("IOTFIN_CONFIG", str(missing))
    message = config_error()
    assert message.startswith("IOTFIN_CONFIG: ") and str(missing) in message


def test_invalid_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("http_port = = 1\n[iotfin\n")
    monkeypatch.setenv("IOTFIN_CONFIG", str(path))
    message = config_error()
    assert message.startswith("IOTFIN_CONFIG: ") and str(path) in message and "not valid TOML" in message


def test_settings_constructed_directly_for_tests_and_embedding(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, database_url="sqlite:///:memory:")
    assert s.resolved_database_url == "sqlite:///:memory:" and s.resolved_telemetry_dir == tmp_path / "telemetry"


@pytest.mark.parametrize(("cls", "exit_code", "http_status", "code"), [
    (IotfinError, 1, 500, "error"),
    (errors.ConfigError, 78, 500, "config"),
    (errors.ValidationError, 65, 422, "validation"),
    (errors.Unauthorized, 77, 401, "unauthorized"),
    (errors.PayloadTooLarge, 65, 413, "payload-too-large"),
    (errors.NotFound, 66, 404, "not-found"),
    (errors.Conflict, 75, 409, "conflict"),
    (errors.ServiceUnavailable, 69, 503, "unavailable"),
])
def test_error_families_map_to_exit_codes_and_http_statuses(cls: type[IotfinError], exit_code: int,
                                                            http_status: int, code: str) -> None:
    err = cls("something is wrong")
    assert isinstance(err, IotfinError) and isinstance(err, Exception)
    assert (err.exit_code, err.http_status, err.code) == (exit_code, http_status, code)
    assert str(err) == "something is wrong" and err.problem_extra() == {}
