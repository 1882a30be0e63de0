"""Stage 2 of the simulator: the telemetry stream, one (device type, day, chunk of devices) at a time.

Each piece is a pure function of the configuration, the stage-1 state and its own random stream
(`rng(cfg, "telemetry", type, day, chunk)`), so pieces can be written by any number of worker
processes in any order and the output is the same. Readings are generated on each device's own
reporting grid (interval + phase), then lost packets, outages, retired devices and injected incident
effects are applied, and finally the device's clock skew and jitter make the reported timestamp.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotfin.sim.config import SimConfig, rng
from iotfin.sim.economy import STANDBY_LOAD, SUBSECTOR_LIST
from iotfin.sim.reference import DEVICE_TYPES, HOURLY_LOAD, INTERVAL_S, METRICS, SECTORS

CHUNK_DEVICES = 16_384  # bounds a worker's memory: at most ~2.4 M readings per piece (10-minute GPS)
OUTAGE_PROBABILITY = 0.015  # per device-day
OUTAGE_MEAN_S = 5_400.0
_HOURLY = np.array([HOURLY_LOAD[s] for s in SECTORS])
_COLD_CHAIN = next(i for i, (_, sub, _) in enumerate(SUBSECTOR_LIST) if sub == "cold_chain")


@dataclass
class State:
    """Stage-1 arrays, memory-mapped from the state folder (shared by worker processes via the OS)."""

    root: Path

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        return {p.stem: np.load(p, mmap_mode="r") for p in self.root.glob("*.npy")}

    @cached_property
    def effects(self) -> pa.Table:
        return pq.read_table(self.root / "effects.parquet")

    @cached_property
    def devices_by_type(self) -> list[np.ndarray]:
        types = np.asarray(self["dev_type"])
        return [np.flatnonzero(types == t) for t in range(len(DEVICE_TYPES))]

    @cached_property
    def trip_row(self) -> np.ndarray:
        rows = np.full(self["dev_type"].shape[0], -1, np.int64)
        rows[np.asarray(self["trip_device"])] = np.arange(self["trip_device"].shape[0])
        return rows


def save_state(state: dict[str, np.ndarray], effects: pa.Table, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, array in state.items():
        np.save(root / f"{name}.npy", np.ascontiguousarray(array))
    pq.write_table(effects, root / "effects.parquet")


def pieces(state: State) -> list[tuple[int, int]]:
    """(type index, chunk) pairs to write for every day."""
    return [(t, c) for t, devs in enumerate(state.devices_by_type) for c in range(-(-devs.size // CHUNK_DEVICES))]


# --- per-type value generators: (state, cfg, device indices, value day, local seconds, rng) -> columns


def _electricity(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
                 r: np.random.Generator) -> dict[str, np.ndarray]:
    owner = st["dev_owner"][devs]
    util_h = STANDBY_LOAD + (1 - STANDBY_LOAD) * st["activity"][owner, day][:, None] * _HOURLY[st["ent_sector"][owner]]
    cum = np.concatenate([np.zeros((devs.size, 1)), np.cumsum(util_h, axis=1)], axis=1)
    hour = np.minimum((local_s // 3600).astype(np.int64), 23)
    rows = np.arange(devs.size)[:, None]
    cap = st["dev_capacity"][devs][:, None]
    power = cap * util_h[rows, hour] * (1 + r.normal(0, 0.04, local_s.shape))
    energy = st["meter_energy_start"][devs, day][:, None] + cap * (cum[rows, hour] + util_h[rows, hour] * (local_s % 3600) / 3600)
    return {"energy_kwh": np.round(energy, 2), "power_kw": np.round(np.maximum(power, 0), 3)}


def _machine(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
             r: np.random.Generator) -> dict[str, np.ndarray]:
    owner = st["dev_owner"][devs]
    hour = np.minimum((local_s // 3600).astype(np.int64), 23)
    load = _HOURLY[st["ent_sector"][owner][:, None], hour]
    busy = st["activity"][owner, day][:, None] * load * st["dev_availability"][devs][:, None]
    runtime = np.clip(busy * (1 + r.normal(0, 0.12, local_s.shape)), 0, 1) * 15.0
    cycles = np.round(np.maximum(runtime * st["dev_cycles_per_min"][devs][:, None] * (1 + r.normal(0, 0.05, local_s.shape)), 0))
    return {"runtime_min": np.round(runtime, 1), "cycles": cycles}


def _stock_level(st: State, devs: np.ndarray, day: int, local_s: np.ndarray) -> np.ndarray:
    owner = st["dev_owner"][devs]
    today, tomorrow = st["stock"][owner, day][:, None], st["stock"][owner, day + 1][:, None]
    return today + (tomorrow - today) * (local_s / 86_400.0)


def _load_cell(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
               r: np.random.Generator) -> dict[str, np.ndarray]:
    tonnes = (st["dev_stock_t"][devs] * st["dev_share"][devs])[:, None] * _stock_level(st, devs, day, local_s)
    return {"weight_t": np.round(tonnes * (1 + r.normal(0, 0.003, local_s.shape)), 3)}


def _tank(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
          r: np.random.Generator) -> dict[str, np.ndarray]:
    level = np.clip(_stock_level(st, devs, day, local_s) * 100 * (1 + r.normal(0, 0.002, local_s.shape)), 0, 100)
    capacity_m3 = (st["dev_stock_t"][devs] * st["dev_share"][devs] * 1.2)[:, None]
    return {"level_pct": np.round(level, 2), "volume_m3": np.round(level / 100 * capacity_m3, 2)}


def _door(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
          r: np.random.Generator) -> dict[str, np.ndarray]:
    owner = st["dev_owner"][devs]
    hour = local_s / 3600
    working = (hour >= 8) & (hour < 18)
    p_open = 0.004 + 0.25 * st["activity"][owner, day][:, None] * working
    return {"door_open": (r.random(local_s.shape) < p_open).astype(np.float64), "seal_intact": np.ones(local_s.shape)}


def _environment(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
                 r: np.random.Generator) -> dict[str, np.ndarray]:
    owner = st["dev_owner"][devs]
    doy = cfg.day(day).timetuple().tm_yday
    outdoor = (14 + 13 * np.sin(2 * np.pi * (doy - 110) / 365) - 0.6 * (st["ent_lat"][owner][:, None] - 32)
               + 4 * np.sin(2 * np.pi * (local_s / 3600 - 9) / 24))
    indoor = 0.5 * outdoor + 9
    cold = (st["dev_subsector"][devs] == _COLD_CHAIN)[:, None]
    temp = np.where(cold, 3.0, indoor) + r.normal(0, 0.35, local_s.shape)
    humidity = np.clip(62 - 0.8 * (temp - 15) + r.normal(0, 3, local_s.shape), 5, 99)
    return {"temperature_c": np.round(temp, 2), "humidity_pct": np.round(humidity, 1)}


def _gps(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
         r: np.random.Generator) -> dict[str, np.ndarray]:
    k = st.trip_row[devs]
    on = st["trip_on"][k, day][:, None]
    depart, dist = st["trip_depart_h"][k, day][:, None], st["trip_dist_km"][k, day][:, None]
    dwell, speed = st["trip_dwell_h"][k, day][:, None], st["trip_speed_kmh"][k, day][:, None]
    bearing = st["trip_bearing"][k, day][:, None]
    tau = dist / speed
    t = local_s / 3600 - depart
    outbound, dwelling, inbound = (t >= 0) & (t < tau), (t >= tau) & (t < tau + dwell), (t >= tau + dwell) & (t < 2 * tau + dwell)
    f = np.where(outbound, t / tau, np.where(dwelling, 1.0, np.where(inbound, 1 - (t - tau - dwell) / tau, 0.0))) * on
    moving = on & (outbound | inbound)
    home_lat, home_lon = st["dev_home_lat"][devs][:, None], st["dev_home_lon"][devs][:, None]
    lat = home_lat + f * dist * np.cos(bearing) / 111.0 + r.normal(0, 4e-5, local_s.shape)
    lon = home_lon + f * dist * np.sin(bearing) / (111.0 * np.cos(np.radians(home_lat))) + r.normal(0, 4e-5, local_s.shape)
    kmh = np.where(moving, speed * (1 + r.normal(0, 0.08, local_s.shape)), 0.0)
    return {"lat": np.round(lat, 6), "lon": np.round(lon, 6), "speed_kmh": np.round(np.maximum(kmh, 0), 1)}


def _livestock(st: State, cfg: SimConfig, devs: np.ndarray, day: int, local_s: np.ndarray,
               r: np.random.Generator) -> dict[str, np.ndarray]:
    hour = local_s / 3600
    daytime = (hour >= 6) & (hour < 19)
    activity = 80 * (0.6 + 0.8 * daytime) * r.lognormal(0, 0.25, local_s.shape)
    return {"activity": np.round(activity, 1), "body_temp_c": np.round(38.6 + r.normal(0, 0.25, local_s.shape), 2)}


GENERATORS = {
    "electricity_meter": _electricity, "machine_sensor": _machine, "load_cell": _load_cell, "door_seal": _door,
    "env_sensor": _environment, "gps_tracker": _gps, "tank_gauge": _tank, "livestock_tag": _livestock,
}


def generate_piece(st: State, cfg: SimConfig, type_idx: int, day: int, chunk: int) -> pa.Table:
    device_type = DEVICE_TYPES[type_idx]
    devs = st.devices_by_type[type_idx][chunk * CHUNK_DEVICES:(chunk + 1) * CHUNK_DEVICES]
    n = devs.size
    r = rng(cfg, "telemetry", type_idx, day, chunk)
    interval_ms = INTERVAL_S[device_type] * 1000
    per_day = 86_400_000 // interval_ms
    midnight = cfg.local_midnight_ms(day)
    offset_ms = st["dev_phase_ms"][devs][:, None] + np.arange(per_day, dtype=np.int64)[None, :] * interval_ms
    true_ts = midnight + offset_ms
    local_s = offset_ms / 1000.0
    values = GENERATORS[device_type](st, cfg, devs, day, local_s, r)

    keep = r.random((n, per_day)) >= st["dev_loss"][devs][:, None]
    outage = r.random(n) < OUTAGE_PROBABILITY
    outage_start = r.uniform(0, 86_400, n)[:, None]
    outage_end = outage_start + r.exponential(OUTAGE_MEAN_S, n)[:, None]
    keep &= ~(outage[:, None] & (local_s >= outage_start) & (local_s < outage_end))
    keep &= (day < st["dev_retire_day"][devs])[:, None]
    jitter = r.integers(0, 1_500, (n, per_day))
    _apply_effects(st, cfg, device_type, devs, day, true_ts, local_s, values, keep)

    ts = true_ts + st["dev_skew_ms"][devs][:, None] + jitter
    columns: dict[str, np.ndarray] = {"device_id": np.broadcast_to((devs + 1)[:, None], ts.shape)[keep], "ts": ts[keep]}
    for metric in METRICS[device_type]:
        columns[metric] = values[metric][keep].astype(np.float64)
    if device_type == "livestock_tag":
        columns["received_ts"] = _satellite_delivery(st, devs, ts, r)[keep]
    return pa.table(columns)


def _satellite_delivery(st: State, devs: np.ndarray, ts: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Tags report through a satellite terminal that uplinks a batch every 4 or 6 hours."""
    period = (st["dev_uplink_period_h"][devs] * 3_600_000).astype(np.int64)[:, None]
    offset = (st["dev_uplink_offset_h"][devs] * 3_600_000).astype(np.int64)[:, None]
    return ((ts - offset) // period + 1) * period + offset + r.integers(30_000, 300_000, ts.shape)


def _apply_effects(st: State, cfg: SimConfig, device_type: str, devs: np.ndarray, day: int, true_ts: np.ndarray,
                   local_s: np.ndarray, values: dict[str, np.ndarray], keep: np.ndarray) -> None:
    effects = st.effects
    if effects.num_rows == 0:
        return
    device_ids = effects["device_id"].to_numpy()
    lo, hi = devs[0] + 1, devs[-1] + 1
    day_start, day_end = cfg.local_midnight_ms(day), cfg.local_midnight_ms(day + 1)
    for i in np.flatnonzero((device_ids >= lo) & (device_ids <= hi)):
        row = {name: effects[name][int(i)].as_py() for name in effects.column_names}
        pos = int(np.searchsorted(devs, row["device_id"] - 1))
        if pos >= devs.size or devs[pos] != row["device_id"] - 1:
            continue
        kind = row["kind"]
        if kind == "replay":
            capture = row["capture_day"]
            if day == capture or row["start_ts"] < day_end and row["end_ts"] > day_start:
                replay_rng = rng(cfg, "replay", int(row["device_id"]))
                copied = GENERATORS[device_type](st, cfg, devs[pos:pos + 1], capture, local_s[pos:pos + 1], replay_rng)
                for metric, column in copied.items():
                    values[metric][pos] = column[0]
            continue
        if row["end_ts"] <= day_start or row["start_ts"] >= day_end:
            continue
        window = (true_ts[pos] >= row["start_ts"]) & (true_ts[pos] < row["end_ts"])
        if kind == "dark":
            keep[pos] &= ~window
        elif kind == "door_open":
            values["door_open"][pos][window] = 1.0
        elif kind == "seal_broken":
            values["seal_intact"][pos][window] = 0.0
        elif kind == "stock_drop":
            removed = row["param"] * np.clip((true_ts[pos] - row["start_ts"]) / max(row["ramp_ms"], 1), 0, 1) * window
            for metric in ("weight_t", "level_pct", "volume_m3"):
                if metric in values:
                    values[metric][pos] = np.round(values[metric][pos] * (1 - removed), 3)


def write_piece(state_dir: str, out_dir: str, cfg: SimConfig, type_idx: int, day: int, chunk: int) -> tuple[str, int, str]:
    """Generate and atomically write one piece; returns (relative path, rows, sha256 of the file)."""
    st = _state(state_dir)
    table = generate_piece(st, cfg, type_idx, day, chunk)
    rel = f"telemetry/{DEVICE_TYPES[type_idx]}/day={cfg.day(day).isoformat()}/part-{chunk:04d}.parquet"
    path = Path(out_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Dictionary encoding of noisy floats costs twice the time for ~7 % size; delta-encode the ids and
    # the near-regular timestamps instead (measured on 10-minute GPS pieces, see docs/benchmarks.md).
    pq.write_table(table, tmp, compression="zstd", use_dictionary=False,
                   column_encoding={"device_id": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"})
    os.replace(tmp, path)
    return rel, table.num_rows, _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_STATES: dict[str, State] = {}


def _state(state_dir: str) -> State:
    """One memory-mapped State per worker process and state folder."""
    if state_dir not in _STATES:
        _STATES.clear()
        _STATES[state_dir] = State(Path(state_dir))
    return _STATES[state_dir]
