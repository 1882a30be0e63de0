"""Device profiles as pure records: what a kind of device reports and what values are plausible;
the code of the default enterprise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iotfin.core.ids import org_code_check_char, uscc_check_char

ANY_METRIC = "*"


def _default_uscc() -> str:
    body = "MA000001"
    first17 = f"91110000{body}{org_code_check_char(body)}"
    return first17 + uscc_check_char(first17)


#: the unified social credit code of the enterprise devices belong to when none is named
DEFAULT_USCC = _default_uscc()


@dataclass(frozen=True, slots=True)
class MetricSpec:
    unit: str
    min: float
    max: float
    type: str = "float"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "unit": self.unit, "min": self.min, "max": self.max}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    device_type: str
    interval_s: int
    inactivity_timeout_s: int
    metrics: dict[str, MetricSpec] = field(default_factory=dict)

    def spec(self, key: str) -> MetricSpec | None:
        return self.metrics.get(key) or self.metrics.get(ANY_METRIC)

    def metrics_json(self) -> dict[str, Any]:
        return {k: v.to_json() for k, v in self.metrics.items()}

    @staticmethod
    def from_row(name: str, device_type: str, interval_s: int, inactivity_timeout_s: int,
                 metrics: dict[str, Any]) -> Profile:
        specs = {k: MetricSpec(v.get("unit", ""), float(v["min"]), float(v["max"]), v.get("type", "float"))
                 for k, v in metrics.items()}
        return Profile(name, device_type, interval_s, inactivity_timeout_s, specs)


_BIG = 1e15


def _p(name: str, interval_s: int, **metrics: tuple[str, float, float]) -> Profile:
    # Inactivity timeout: three missed reports, the usual rule of thumb for telemetry heartbeats.
    return Profile(name, name, interval_s, 3 * interval_s,
                   {k: MetricSpec(unit, lo, hi) for k, (unit, lo, hi) in metrics.items()})


# The standard catalogue: physical plausibility ranges, not business thresholds. A reading outside
# them is a broken or tampered device, so it is quarantined rather than stored.
STANDARD_PROFILES: tuple[Profile, ...] = (
    Profile("generic", "generic", 60, 3600, {ANY_METRIC: MetricSpec("", -_BIG, _BIG)}),
    _p("electricity_meter", 900, energy_kwh=("kWh", 0, 1e10), power_kw=("kW", 0, 1e5)),
    _p("machine_sensor", 900, runtime_min=("min", 0, 15.5), cycles=("count", 0, 1e5)),
    _p("load_cell", 900, weight_t=("t", 0, 1e6)),
    _p("door_seal", 900, door_open=("bool", 0, 1), seal_intact=("bool", 0, 1)),
    _p("env_sensor", 900, temperature_c=("°C", -50, 80), humidity_pct=("%", 0, 100)),
    _p("gps_tracker", 600, lat=("deg", -90, 90), lon=("deg", -180, 180), speed_kmh=("km/h", 0, 200)),
    _p("tank_gauge", 1800, level_pct=("%", 0, 100), volume_m3=("m3", 0, 1e6)),
    _p("livestock_tag", 3600, activity=("index", 0, 1000), body_temp_c=("°C", 30, 45)),
)
