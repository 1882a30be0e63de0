"""Stage 1 of the simulator: the economy without the telemetry stream.

Enterprises, supply chains, the latent financial-health process, devices and their parameters,
trade documents, financing requests, commodity prices and the injected incidents. Everything here
is small (per enterprise × day at most) and vectorised with numpy; the per-reading telemetry is
stage 2 (`iotfin.sim.telemetry`), which reads the `Economy.state` arrays this stage produces.
See docs/simulator.md for the generative model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from iotfin.core.ids import (
    USCC_ALPHABET,
    org_code_check_char,
    resident_id_check_char,
    uscc_check_char,
)
from iotfin.sim import shocks as sim_shocks
from iotfin.sim import vouchers as sim_vouchers
from iotfin.sim.config import SimConfig, rng
from iotfin.sim.reference import (
    COMMODITY_PRICES,
    DEVICE_MIX,
    DEVICE_TYPES,
    GIVEN,
    HOURLY_LOAD,
    INTERVAL_S,
    LENDERS,
    METER_KW,
    METRICS,
    NAME_SUFFIX,
    REGIONS,
    SECTORS,
    SERIAL_PREFIX,
    SITE_KIND,
    STOCK_T,
    SUBSECTORS,
    SURNAMES,
    TRADE_NAMES,
)

MONEY = pa.decimal128(18, 2)
HOUR_MS = 3_600_000
DEFAULT_THRESHOLD = -1.8  # latent health below this is a default (see docs/simulator.md)
STANDBY_LOAD = 0.06  # share of connected load drawn when idle
STOCK_TYPES = ("load_cell", "tank_gauge")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Economy:
    """Tables to write as they are, and arrays the telemetry stage needs (never written as output)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    ground_truth: dict[str, pa.Table] = field(default_factory=dict)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    effects: pa.Table | None = None


def build_economy(cfg: SimConfig) -> Economy:
    eco = Economy()
    ent = _enterprises(cfg)
    ent_table = _enterprise_table(cfg, ent)
    uscc = ent_table["uscc"].to_pylist()
    health, activity, default_day = _health(cfg, ent)
    shock_truth = sim_shocks.apply(cfg, ent.sector_idx, ent.region_idx, activity) if cfg.shocks else {}
    stock = _stock_levels(cfg, ent, health)
    sites = _sites(cfg, ent)
    dev = _devices(cfg, ent, sites)
    incidents = _Incidents(cfg)
    shutdown = incidents.production_shutdowns(ent, dev, activity, default_day)
    trips = _trips(cfg, ent, dev, activity)
    trade = _trade(cfg, ent, activity, health, default_day, dev, trips)
    incidents.fabricated_trades(ent, dev, trade, trips)
    fakes = sim_vouchers.inject_fake_deliveries(cfg, ent, trade, trips, _trucks_by_enterprise(ent, dev, trips),
                                                lambda e: _commodity(ent, e), incidents)
    finance = _financing(cfg, ent, trade, uscc)
    incidents.double_financing(ent, finance, uscc)
    incidents.device_incidents(ent, dev, trips, stock, default_day)
    voucher_flows, voucher_fraud = sim_vouchers.flows(cfg, ent, trade, health, trips, fakes)
    energy = _meter_energy(cfg, ent, dev, activity)
    herd_retire = _herd_retirement(cfg, ent, dev, health, default_day)

    eco.tables = {
        "tenants": _tenants_table(),
        "enterprises": ent_table,
        "sites": sites.table,
        "relationships": ent.relationships,
        "devices": dev.table(cfg),
        "trade_documents": finance.trade_table,
        "financing_requests": finance.table(cfg),
        "commodity_prices": _commodity_prices(cfg),
        "vouchers": voucher_flows,
    }
    if cfg.shocks:
        eco.tables["commodity_prices"] = sim_shocks.slump_prices(cfg, eco.tables["commodity_prices"])
    eco.ground_truth = {
        "defaults": _defaults_table(cfg, ent, default_day),
        "incidents": incidents.table(),
        "health": _health_table(cfg, ent, health, activity),
        "voucher_fraud": voucher_fraud,
        **shock_truth,
    }
    eco.effects = incidents.effects_table()
    eco.state = {
        "activity": activity.astype(np.float32),
        "stock": stock.astype(np.float32),
        "shutdown": shutdown,
        "ent_sector": ent.sector_idx,
        "ent_subsector": ent.subsector_idx,
        "ent_lat": ent.lat,
        **{f"dev_{k}": v for k, v in dev.params.items()},
        "dev_retire_day": herd_retire,
        "meter_energy_start": energy,
        **{f"trip_{k}": v for k, v in trips.items()},
    }
    return eco


# --- enterprises and chains ----------------------------------------------------------------------


@dataclass
class _Enterprises:
    n: int
    ids: np.ndarray
    quality: np.ndarray
    size: np.ndarray
    sector_idx: np.ndarray
    subsector_idx: np.ndarray  # index into the flat SUBSECTOR_LIST
    region_idx: np.ndarray
    chain: np.ndarray  # -1 = not in a chain
    role: np.ndarray  # "core" | "supplier" | "buyer" | "independent"
    tier: np.ndarray
    founded_days_before: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    lender_idx: np.ndarray  # the bank the enterprise's chain works with
    relationships: pa.Table = None  # type: ignore[assignment]
    rel_supplier: np.ndarray = None  # type: ignore[assignment]
    rel_buyer: np.ndarray = None  # type: ignore[assignment]
    rel_chain: np.ndarray = None  # type: ignore[assignment]


SUBSECTOR_LIST: tuple[tuple[str, str, str], ...] = tuple(
    (sector, sub, commodity) for sector in SECTORS for sub, commodity in SUBSECTORS[sector]
)


def _enterprises(cfg: SimConfig) -> _Enterprises:
    r = rng(cfg, "enterprises")
    n = cfg.enterprises
    n_chains = int(np.clip(n // 60, 3, 500))
    quality = r.normal(0.0, 1.0, n)
    size = r.lognormal(0.0, 0.6, n)
    order = r.permutation(n)
    role = np.full(n, "independent", dtype=object)
    chain = np.full(n, -1, np.int64)
    tier = np.zeros(n, np.int64)
    cores = order[:n_chains]
    role[cores] = "core"
    chain[cores] = np.arange(n_chains)
    size[cores] *= 8.0
    quality[cores] = np.abs(quality[cores]) + 0.5  # core enterprises are large and sound
    members = order[n_chains:]
    in_chain = members[r.random(members.size) >= 0.08]
    chain[in_chain] = r.integers(0, n_chains, in_chain.size)
    role[in_chain] = np.where(r.random(in_chain.size) < 0.6, "supplier", "buyer")
    tier[in_chain] = np.where(r.random(in_chain.size) < 0.65, 1, 2)

    # Chain c's core is in sector c mod 5 (so every sector has a chain once there are five); members
    # are in the chain's sector about half the time, otherwise anywhere.
    chain_sector = np.arange(n_chains) % len(SECTORS)
    sector_idx = r.choice(len(SECTORS), n, p=[0.30, 0.20, 0.15, 0.20, 0.15])
    same = (chain >= 0) & (r.random(n) < 0.45)
    sector_idx[same] = chain_sector[chain[same]]
    sector_idx[cores] = chain_sector
    sector_idx[members[: len(SECTORS)]] = np.arange(len(SECTORS))  # every sector present, even when tiny
    subsector_idx = np.empty(n, np.int64)
    for s, sector in enumerate(SECTORS):
        options = [i for i, (sec, _, _) in enumerate(SUBSECTOR_LIST) if sec == sector]
        mask = sector_idx == s
        subsector_idx[mask] = r.choice(options, int(mask.sum()))

    region_idx = r.integers(0, len(REGIONS), n)
    centre = np.array([(lat, lon) for *_, lat, lon in REGIONS])
    lat = centre[region_idx, 0] + r.normal(0, 0.25, n)
    lon = centre[region_idx, 1] + r.normal(0, 0.25, n)
    years = np.where(role == "core", r.uniform(10, 30, n), np.minimum(1 + r.gamma(2.0, 3.5, n), 30))
    founded_days_before = (years * 365.25).astype(np.int64)
    lender_idx = np.where(chain >= 0, 1 + chain % (len(LENDERS) - 1), 1 + r.integers(0, len(LENDERS) - 1, n))
    ent = _Enterprises(n, np.arange(1, n + 1, dtype=np.int64), quality, size, sector_idx, subsector_idx, region_idx,
                       chain, role, tier, founded_days_before, lat, lon, lender_idx)
    _relationships(cfg, ent, r)
    return ent


def _relationships(cfg: SimConfig, ent: _Enterprises, r: np.random.Generator) -> None:
    """Tier 1 suppliers sell to the core, tier 2 to one or two tier 1 suppliers; buyers mirror that."""
    supplier, buyer, chain_of, tier_of = [], [], [], []
    for c in range(int(ent.chain.max()) + 1):
        idx = np.flatnonzero(ent.chain == c)
        core = idx[ent.role[idx] == "core"][0]
        for side in ("supplier", "buyer"):
            t1 = idx[(ent.role[idx] == side) & (ent.tier[idx] == 1)]
            t2 = idx[(ent.role[idx] == side) & (ent.tier[idx] == 2)]
            if t1.size == 0:  # no tier 1 on this side: everyone trades with the core directly
                t1, t2 = t2, t2[:0]
                ent.tier[t1] = 1
            for e in t1:
                pair = (e, core) if side == "supplier" else (core, e)
                supplier.append(pair[0]), buyer.append(pair[1]), chain_of.append(c), tier_of.append(1)
            for e in t2:
                for partner in r.choice(t1, size=min(t1.size, 1 + int(r.random() < 0.4)), replace=False):
                    pair = (e, partner) if side == "supplier" else (partner, e)
                    supplier.append(pair[0]), buyer.append(pair[1]), chain_of.append(c), tier_of.append(2)
    s, b = np.array(supplier, np.int64), np.array(buyer, np.int64)
    # A link starts after both parties exist: between 0.3 and 6 years before the simulation begins.
    youngest = np.minimum(ent.founded_days_before[s], ent.founded_days_before[b])
    since_days = np.minimum((r.uniform(0.3, 6.0, s.size) * 365).astype(np.int64), youngest)
    ent.rel_supplier, ent.rel_buyer, ent.rel_chain = s, b, np.array(chain_of, np.int64)
    ent.relationships = pa.table(
        {
            "relationship_id": np.arange(1, s.size + 1, dtype=np.int64),
            "chain_id": ent.rel_chain + 1,
            "core_enterprise_id": ent.ids[[np.flatnonzero((ent.chain == c) & (ent.role == "core"))[0] for c in chain_of]]
            if s.size else np.zeros(0, np.int64),
            "supplier_id": ent.ids[s],
            "buyer_id": ent.ids[b],
            "tier": np.array(tier_of, np.int16),
            "since": pa.array([cfg.start_date - timedelta(days=int(d)) for d in since_days], pa.date32()),
        }
    )


def _tenants_table() -> pa.Table:
    return pa.table(
        {
            "tenant_id": np.arange(1, len(LENDERS) + 1, dtype=np.int64),
            "code": [t.code for t in LENDERS],
            "name": [t.name for t in LENDERS],
            "name_en": [t.name_en for t in LENDERS],
            "kind": [t.kind for t in LENDERS],
        }
    )


def _enterprise_table(cfg: SimConfig, ent: _Enterprises) -> pa.Table:
    r = rng(cfg, "enterprise-attributes")
    n = ent.n
    q = ent.quality
    age_years = ent.founded_days_before / 365.25
    grade_score = q + r.normal(0, 0.8, n)
    tax_grade = np.select([age_years < 1.0, grade_score > 0.8, grade_score > -0.4, grade_score > -1.1, grade_score > -1.9],
                          ["M", "A", "B", "M", "C"], "D")
    litigation = r.poisson(0.25 * np.exp(-0.8 * q))
    key_person = r.poisson(0.3 * np.exp(-0.5 * q))
    capital_wan = np.maximum(10, np.round(ent.size * r.lognormal(np.log(300), 0.5, n))).astype(np.int64)

    names, names_en, usccs, reps, rep_ids, phones = [], [], [], [], [], []
    seen_names: dict[str, int] = {}
    seen_uscc: set[str] = set()
    body_chars = np.array(list(USCC_ALPHABET))
    for i in range(n):
        code, region_cn, region_en, *_ = REGIONS[ent.region_idx[i]]
        sector, sub, _ = SUBSECTOR_LIST[ent.subsector_idx[i]]
        trade_cn, trade_en = TRADE_NAMES[r.integers(len(TRADE_NAMES))]
        suffix_cn, suffix_en = NAME_SUFFIX[sub]
        base = f"{region_cn[:-1]}{trade_cn}{suffix_cn}"
        count = seen_names.get(base, 0)
        seen_names[base] = count + 1
        names.append(base if count == 0 else f"{region_cn[:-1]}{trade_cn}{GIVEN[count % len(GIVEN)]}{suffix_cn}")
        names_en.append(f"{region_en} {trade_en} {suffix_en}" + ("" if count == 0 else f" No. {count + 1}"))
        while True:  # GB 32100: '9' (market regulator) '1' (enterprise) + region + org code + check
            body = "".join(r.choice(body_chars, 8))
            first17 = f"91{code}{body}{org_code_check_char(body)}"
            uscc = first17 + uscc_check_char(first17)
            if uscc not in seen_uscc:
                seen_uscc.add(uscc)
                break
        usccs.append(uscc)
        reps.append(SURNAMES[r.integers(len(SURNAMES))] + "".join(GIVEN[j] for j in r.integers(len(GIVEN), size=1 + int(r.random() < 0.7))))
        born = cfg.start_date - timedelta(days=int(r.uniform(28, 65) * 365.25))
        first17 = f"{code}{born:%Y%m%d}{r.integers(0, 1000):03d}"
        rep_ids.append(first17 + resident_id_check_char(first17))
        phones.append(f"1{r.choice(list('3456789'))}{r.integers(0, 10**9):09d}")

    subs = [SUBSECTOR_LIST[i] for i in ent.subsector_idx]
    return pa.table(
        {
            "enterprise_id": ent.ids,
            "uscc": usccs,
            "name": names,
            "name_en": names_en,
            "sector": [SECTORS[i] for i in ent.sector_idx],
            "subsector": [s[1] for s in subs],
            "commodity": [s[2] for s in subs],
            "region_code": [REGIONS[i][0] for i in ent.region_idx],
            "region": [REGIONS[i][1] for i in ent.region_idx],
            "founded_on": pa.array([cfg.start_date - timedelta(days=int(d)) for d in ent.founded_days_before], pa.date32()),
            "registered_capital": pa.array([Decimal(int(c) * 10_000) for c in capital_wan], MONEY),
            "legal_rep_name": reps,
            "legal_rep_id_number": rep_ids,
            "legal_rep_phone": phones,
            "tax_grade": tax_grade.tolist(),
            "litigation_count": litigation.astype(np.int32),
            "key_person_changes": key_person.astype(np.int32),
            "chain_id": np.where(ent.chain >= 0, ent.chain + 1, -1),
            "role": ent.role.tolist(),
            "tier": ent.tier.astype(np.int16),
            "lender_tenant_id": ent.lender_idx + 1,
        }
    )


# --- latent financial health ---------------------------------------------------------------------


def _health(cfg: SimConfig, ent: _Enterprises) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latent health h[e, d], activity a[e, d] in [0, ~1.1] and the default day (-1 = none).

    h = level + drift·t + AR(1) noise + sector factor + occasional shock. A fall below
    DEFAULT_THRESHOLD is a default; activity then collapses. Distress is more likely for weak
    enterprises but not determined by quality, so entity data alone cannot rank defaults perfectly.
    """
    r = rng(cfg, "health")
    n, days = ent.n, cfg.days
    q = ent.quality
    distressed = r.random(n) < _sigmoid(-2.0 - 0.9 * q)
    drift = np.where(distressed, r.normal(-3.2, 0.8, n), r.normal(0.1, 0.4, n)) / 365.0
    level = np.maximum(0.5 + 0.5 * q + r.normal(0, 0.3, n), -1.0)
    noise = np.empty((n, days))
    x = r.normal(0, 0.24, n)
    shocks = r.normal(0, 0.06, (n, days))
    for d in range(days):
        x = 0.97 * x + shocks[:, d]
        noise[:, d] = x
    sector_factor = np.cumsum(r.normal(0, 0.01, (len(SECTORS), days)), axis=1)
    jump_day = np.where(r.random(n) < 0.05, r.integers(0, max(days, 1), n), days)
    jump = np.where(np.arange(days)[None, :] >= jump_day[:, None], -1.5, 0.0)
    t = np.arange(days)[None, :]
    health = level[:, None] + drift[:, None] * t + noise + sector_factor[ent.sector_idx] + jump
    health[ent.role == "core"] = np.maximum(health[ent.role == "core"], 0.0)

    below = health < DEFAULT_THRESHOLD
    default_day = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    since_default = t - default_day[:, None]
    defaulted = (default_day[:, None] >= 0) & (since_default >= 0)
    health = np.where(defaulted, np.minimum(health, DEFAULT_THRESHOLD), health)

    dates = [cfg.day(d) for d in range(days)]
    weekday = np.array([d.weekday() for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates])
    week_factor = np.ones((len(SECTORS), 7))
    week_factor[0, 5:] = (0.8, 0.6)  # manufacturing weekends
    week_factor[1, 6] = 0.7
    week_factor[4, 5:] = (0.8, 0.5)
    season = 1.0 + 0.1 * np.sin(2 * np.pi * (doy - 100) / 365.0)
    activity = _sigmoid(1.2 + 1.5 * health) * week_factor[ent.sector_idx][:, weekday] * season[None, :]
    activity = np.where(defaulted, activity * np.maximum(0.85 ** since_default, 0.05), activity)
    return health, activity, default_day


def _stock_levels(cfg: SimConfig, ent: _Enterprises, health: np.ndarray) -> np.ndarray:
    """Fraction of stock capacity held at each local midnight (days + 1 columns), a slow AR process
    pulled down by poor health (stock is sold off to raise cash)."""
    r = rng(cfg, "stock")
    n, days = ent.n, cfg.days
    target = np.clip(0.55 + 0.2 * np.tanh(np.concatenate([health, health[:, -1:]], axis=1)), 0.05, 0.95)
    level = np.empty((n, days + 1))
    x = target[:, 0] + r.normal(0, 0.05, n)
    steps = r.normal(0, 0.03, (n, days + 1))
    for d in range(days + 1):
        x = x + 0.15 * (target[:, d] - x) + steps[:, d]
        level[:, d] = x
    return np.clip(level, 0.02, 0.98)


# --- sites and devices ---------------------------------------------------------------------------


@dataclass
class _Sites:
    table: pa.Table
    main_site: np.ndarray  # per enterprise: site index
    store_site: np.ndarray  # per enterprise: where stock is kept (the main site if no warehouse)
    lat: np.ndarray
    lon: np.ndarray
    radius_m: np.ndarray


def _sites(cfg: SimConfig, ent: _Enterprises) -> _Sites:
    r = rng(cfg, "sites")
    n = ent.n
    has_store = r.random(n) < 0.35
    count = 1 + has_store
    main_site = np.concatenate([[0], np.cumsum(count)[:-1]])
    store_site = np.where(has_store, main_site + 1, main_site)
    owner = np.repeat(np.arange(n), count)
    is_store = np.zeros(owner.size, bool)
    is_store[store_site[has_store]] = True
    lat = np.where(is_store, ent.lat[owner] + r.normal(0, 0.05, owner.size), ent.lat[owner])
    lon = np.where(is_store, ent.lon[owner] + r.normal(0, 0.05, owner.size), ent.lon[owner])
    # Vehicles are fenced to an operating area around their depot; fixed sites to their perimeter.
    sector = ent.sector_idx[owner]
    radius = np.where(is_store, r.uniform(200, 800, owner.size),
                      np.where(np.isin(sector, (1, 4)), r.uniform(60_000, 120_000, owner.size),
                               r.uniform(40_000, 80_000, owner.size)))
    kinds = [("warehouse" if s else SITE_KIND[SECTORS[sector[i]]]) for i, s in enumerate(is_store)]
    names = [f"{k}-{ent.ids[o]}-{j}" for j, (k, o) in enumerate(zip(kinds, owner, strict=True))]
    table = pa.table(
        {
            "site_id": np.arange(1, owner.size + 1, dtype=np.int64),
            "enterprise_id": ent.ids[owner],
            "name": names,
            "kind": kinds,
            "lat": np.round(lat, 6),
            "lon": np.round(lon, 6),
            "geofence_radius_m": np.round(radius, 1),
        }
    )
    return _Sites(table, main_site, store_site, lat, lon, radius)


@dataclass
class _Devices:
    ids: np.ndarray
    owner: np.ndarray  # enterprise index
    type_idx: np.ndarray
    site: np.ndarray  # site index
    installed_days_before: np.ndarray
    params: dict[str, np.ndarray]

    def of_type(self, device_type: str) -> np.ndarray:
        return np.flatnonzero(self.type_idx == DEVICE_TYPES.index(device_type))

    def table(self, cfg: SimConfig) -> pa.Table:
        types = np.array(DEVICE_TYPES, dtype=object)[self.type_idx]
        commodity = np.array([c for *_, c in SUBSECTOR_LIST], dtype=object)[self.params["subsector"]]
        has_commodity = np.isin(self.type_idx, [DEVICE_TYPES.index(t) for t in (*STOCK_TYPES, "livestock_tag")])
        return pa.table(
            {
                "device_id": self.ids,
                "enterprise_id": self.owner + 1,
                "site_id": self.site + 1,
                "device_type": types.tolist(),
                "serial": [f"{SERIAL_PREFIX[t]}{i:010d}" for t, i in zip(types, self.ids, strict=True)],
                "interval_s": np.array([INTERVAL_S[t] for t in types], np.int32),
                "metrics": [",".join(METRICS[t]) for t in types],
                "commodity": pa.array(np.where(has_commodity, commodity, None).tolist(), pa.string()),
                "installed_on": pa.array([cfg.start_date - timedelta(days=int(d)) for d in self.installed_days_before],
                                         pa.date32()),
            }
        )


def _device_counts(cfg: SimConfig, ent: _Enterprises, r: np.random.Generator) -> np.ndarray:
    """Devices per (enterprise, type): one electricity meter each, the rest by sector mix and size,
    scaled to the requested fleet size with largest-remainder rounding (exact total, no randomness
    beyond the sizes)."""
    n, k = ent.n, len(DEVICE_TYPES)
    meter = DEVICE_TYPES.index("electricity_meter")
    mix = np.zeros((len(SUBSECTOR_LIST), k))
    for i, (_, sub, _) in enumerate(SUBSECTOR_LIST):
        for t, v in DEVICE_MIX[sub].items():
            mix[i, DEVICE_TYPES.index(t)] = v
    mix[:, meter] = np.maximum(mix[:, meter] - 1, 0)
    expected = mix[ent.subsector_idx] * np.sqrt(ent.size)[:, None] * r.uniform(0.6, 1.4, (n, k))
    remaining = cfg.device_target - n
    scaled = expected.ravel() * remaining / expected.sum()
    counts = np.floor(scaled).astype(np.int64)
    short = remaining - int(counts.sum())
    counts[np.argsort(-(scaled - counts), kind="stable")[:short]] += 1
    counts = counts.reshape(n, k)
    counts[:, meter] += 1
    return counts


def _devices(cfg: SimConfig, ent: _Enterprises, sites: _Sites) -> _Devices:
    r = rng(cfg, "devices")
    counts = _device_counts(cfg, ent, r)
    owner = np.repeat(np.repeat(np.arange(ent.n), len(DEVICE_TYPES)), counts.ravel())
    type_idx = np.repeat(np.tile(np.arange(len(DEVICE_TYPES)), ent.n), counts.ravel())
    n = owner.size
    stock_like = np.isin(type_idx, [DEVICE_TYPES.index(t) for t in ("load_cell", "tank_gauge", "door_seal", "env_sensor")])
    site = np.where(stock_like, sites.store_site[owner], sites.main_site[owner])
    installed = np.minimum((r.uniform(30, 700, n)).astype(np.int64), ent.founded_days_before[owner])
    sector = ent.sector_idx[owner]
    interval_ms = np.array([INTERVAL_S[t] * 1000 for t in DEVICE_TYPES], np.int64)[type_idx]

    # Share of the enterprise's stock each load cell / tank sees (sums to 1 over its stock devices).
    share = r.uniform(0.6, 1.4, n)
    is_stock = np.isin(type_idx, [DEVICE_TYPES.index(t) for t in STOCK_TYPES])
    stock_sum = np.bincount(owner[is_stock], weights=share[is_stock], minlength=ent.n)
    share = np.where(is_stock, share / np.maximum(stock_sum[owner], 1e-9), 0.0)

    skew = np.where(r.random(n) < 0.04, r.normal(0, 120_000, n), r.normal(0, 1_500, n))
    params = {
        "owner": owner,
        "type": type_idx,
        "subsector": ent.subsector_idx[owner],
        "phase_ms": (r.random(n) * interval_ms).astype(np.int64),
        "skew_ms": skew.astype(np.int64),
        "loss": r.beta(1.2, 150, n),  # per-reading loss probability, mean about 0.8 %
        "capacity": np.array(list(METER_KW.values()))[sector] * ent.size[owner] ** 0.5 * r.lognormal(0, 0.3, n),
        "stock_t": np.array(list(STOCK_T.values()))[sector] * ent.size[owner] * r.lognormal(0, 0.2, n),
        "share": share,
        "availability": r.uniform(0.6, 0.95, n),
        "cycles_per_min": r.uniform(0.5, 5.0, n),
        "home_lat": sites.lat[site] + r.normal(0, 0.002, n),
        "home_lon": sites.lon[site] + r.normal(0, 0.002, n),
        "radius_m": sites.radius_m[site],
        "uplink_period_h": r.choice([4, 6], n),
        "uplink_offset_h": r.uniform(0, 4, n),
    }
    return _Devices(np.arange(1, n + 1, dtype=np.int64), owner, type_idx, site, installed, params)


def _meter_energy(cfg: SimConfig, ent: _Enterprises, dev: _Devices, activity: np.ndarray) -> np.ndarray:
    """Cumulative kWh at each local midnight for every device (zero for non-meters).

    Daily consumption is the noise-free integral of the load curve the telemetry stage draws power
    readings around, so the counter is monotonic and consistent with power, whatever worker writes
    which day.
    """
    r = rng(cfg, "meter-energy")
    meters = dev.of_type("electricity_meter")
    hourly = np.array([HOURLY_LOAD[s] for s in SECTORS])  # sector x 24
    owner = dev.owner[meters]
    util_sum = STANDBY_LOAD * 24 + (1 - STANDBY_LOAD) * activity[owner] * hourly[ent.sector_idx[owner]].sum(axis=1)[:, None]
    daily = dev.params["capacity"][meters][:, None] * util_sum
    out = np.zeros((dev.ids.size, cfg.days + 1))
    out[meters, 0] = r.uniform(1e4, 5e6, meters.size)
    out[meters, 1:] = out[meters, :1] + np.cumsum(daily, axis=1)
    return out


def _herd_retirement(cfg: SimConfig, ent: _Enterprises, dev: _Devices, health: np.ndarray,
                     default_day: np.ndarray) -> np.ndarray:
    """Day from which a livestock tag stops reporting (animal sold); cfg.days = never.

    Farms in distress sell part of the herd: 20-50 % of tags go quiet, spread over the weeks after
    health first drops below -1."""
    r = rng(cfg, "herd")
    retire = np.full(dev.ids.size, cfg.days, np.int64)
    tags = dev.of_type("livestock_tag")
    owner = dev.owner[tags]
    low = health < -1.0
    first_low = np.where(low.any(axis=1), low.argmax(axis=1), cfg.days)
    selling = (first_low[owner] < cfg.days) & (r.random(tags.size) < r.uniform(0.2, 0.5, ent.n)[owner])
    retire[tags[selling]] = np.minimum(first_low[owner[selling]] + r.integers(0, 30, int(selling.sum())), cfg.days)
    return retire


# --- vehicles ------------------------------------------------------------------------------------


def _trips(cfg: SimConfig, ent: _Enterprises, dev: _Devices, activity: np.ndarray) -> dict[str, np.ndarray]:
    """One out-and-back trip per working truck-day: departure hour, distance, bearing, dwell, speed."""
    r = rng(cfg, "trips")
    trucks = dev.of_type("gps_tracker")
    owner = dev.owner[trucks]
    n, days = trucks.size, cfg.days
    logistics = (ent.sector_idx[owner] == SECTORS.index("logistics"))[:, None]
    p_trip = np.where(logistics, 0.15 + 0.75 * activity[owner], 0.5 * activity[owner])
    radius_km = dev.params["radius_m"][trucks][:, None] / 1000.0
    return {
        "device": trucks,
        "on": r.random((n, days)) < p_trip,
        "depart_h": r.uniform(6.0, 9.5, (n, days)).astype(np.float32),
        "dist_km": (r.uniform(0.1, 0.7, (n, days)) * radius_km).astype(np.float32),
        "bearing": r.uniform(0, 2 * np.pi, (n, days)).astype(np.float32),
        "dwell_h": r.uniform(0.5, 2.5, (n, days)).astype(np.float32),
        "speed_kmh": r.uniform(45, 65, (n, days)).astype(np.float32),
    }


# --- trade documents -----------------------------------------------------------------------------

DOC_ORDER = {"purchase_order": 0, "delivery_note": 1, "invoice": 2, "warehouse_receipt": 3, "payment": 4}


@dataclass
class _Trade:
    """Columns of trade documents before ids are assigned; `order` links a document to its order row."""

    cols: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "doc_type", "chain", "seller", "buyer", "order", "day", "due_day", "amount_fen", "commodity", "quantity",
        "vehicle", "fabricated")})
    ids: np.ndarray | None = None

    def add(self, n: int, **cols: object) -> np.ndarray:
        """Append n documents; returns their row numbers. Scalars broadcast."""
        start = len(self.cols["doc_type"])
        for key in self.cols:
            value = cols.get(key, None if key not in ("fabricated",) else False)
            self.cols[key].extend(value if isinstance(value, list | np.ndarray) else [value] * n)
        return np.arange(start, start + n)

    def finalise(self) -> None:
        """Ids in (day, document kind, row) order, so they read chronologically."""
        day = np.array(self.cols["day"], np.int64)
        kind = np.array([DOC_ORDER[t] for t in self.cols["doc_type"]], np.int64)
        order = np.lexsort((np.arange(day.size), kind, day))
        self.ids = np.empty(day.size, np.int64)
        self.ids[order] = np.arange(1, day.size + 1)

    def table(self, cfg: SimConfig) -> pa.Table:
        c = self.cols
        assert self.ids is not None
        rank = np.argsort(self.ids)
        doc_type = np.array(c["doc_type"], dtype=object)
        order_row = np.array([o if o is not None else -1 for o in c["order"]], np.int64)
        order_id = np.where(order_row >= 0, self.ids[np.maximum(order_row, 0)], 0)
        is_invoice = doc_type == "invoice"
        invoice_seq = np.cumsum(is_invoice[rank])  # invoice numbering follows issue order
        codes, numbers = [None] * doc_type.size, [None] * doc_type.size
        for pos, row in enumerate(rank):
            if is_invoice[row]:
                seller = int(c["seller"][row])
                year = cfg.day(int(c["day"][row])).year % 100
                codes[pos] = f"{(seller % 9000) + 1000:04d}{year:02d}{(seller * 37) % 1000:03d}{(seller % 7) + 1}00"
                # 7919 is coprime with 10^8, so distinct sequence numbers give distinct invoice numbers.
                numbers[pos] = f"{(int(invoice_seq[pos]) * 7919 + 1_234_567) % 10**8:08d}"
        due = [None if c["due_day"][row] is None else cfg.day(int(c["due_day"][row])) for row in rank]
        vehicle = [c["vehicle"][row] for row in rank]
        return pa.table(
            {
                "document_id": self.ids[rank],
                "doc_type": doc_type[rank].tolist(),
                "chain_id": pa.array([None if c["chain"][row] is None or c["chain"][row] < 0 else int(c["chain"][row]) + 1
                                      for row in rank], pa.int64()),
                "seller_id": np.array(c["seller"], np.int64)[rank] + 1,
                "buyer_id": np.array(c["buyer"], np.int64)[rank] + 1,
                "order_id": pa.array([int(order_id[row]) if order_row[row] >= 0 else None for row in rank], pa.int64()),
                "issued_on": pa.array([cfg.day(int(c["day"][row])) for row in rank], pa.date32()),
                "due_on": pa.array(due, pa.date32()),
                "amount": pa.array([Decimal(int(c["amount_fen"][row])).scaleb(-2) for row in rank], MONEY),
                "currency": ["CNY"] * doc_type.size,
                "commodity": [c["commodity"][row] for row in rank],
                "quantity": pa.array([c["quantity"][row] for row in rank], pa.float64()),
                "invoice_code": pa.array(codes, pa.string()),
                "invoice_number": pa.array(numbers, pa.string()),
                "vehicle_device_id": pa.array([None if v is None else int(v) for v in vehicle], pa.int64()),
            }
        )


def _trade(cfg: SimConfig, ent: _Enterprises, activity: np.ndarray, health: np.ndarray, default_day: np.ndarray,
           dev: _Devices, trips: dict[str, np.ndarray]) -> _Trade:
    """Orders arrive per link as a Poisson process driven by both parties' activity; each order is
    delivered (by one of the seller's trucks, which then makes a trip that day), invoiced and paid
    with lags; weak buyers pay late, defaulted ones not at all."""
    r = rng(cfg, "trade")
    trade = _Trade()
    days = cfg.days
    s, b = ent.rel_supplier, ent.rel_buyer
    rate = 0.06 * ent.size[s] ** 0.3 * (1.0 + (ent.role[b] == "core"))
    lam = rate[:, None] * activity[s] * np.sqrt(activity[b])
    counts = r.poisson(lam)
    rel_idx, order_day = np.nonzero(counts)
    reps = counts[rel_idx, order_day]
    rel_idx, order_day = np.repeat(rel_idx, reps), np.repeat(order_day, reps)
    seller, buyer = s[rel_idx], b[rel_idx]
    m = rel_idx.size
    commodity = np.array([c for *_, c in SUBSECTOR_LIST], dtype=object)[ent.subsector_idx[seller]]
    price = np.array([COMMODITY_PRICES[c][1] for c in commodity])
    amount_fen = np.round(r.lognormal(np.log(60_000), 0.7, m) * ent.size[seller] ** 0.5 * 100).astype(np.int64)
    quantity = np.round(amount_fen / 100 / price, 3)
    seller_default = np.where(default_day[seller] >= 0, default_day[seller], days + 10_000)
    buyer_default = np.where(default_day[buyer] >= 0, default_day[buyer], days + 10_000)

    po = trade.add(m, doc_type="purchase_order", chain=ent.rel_chain[rel_idx], seller=seller, buyer=buyer,
                   day=order_day, amount_fen=amount_fen, commodity=commodity.tolist(), quantity=quantity)
    for row in po:
        trade.cols["order"][row] = int(row)

    deliver_day = order_day + 1 + r.poisson(2.0, m)
    delivered = (deliver_day < days) & (deliver_day < seller_default)
    trucks_of = _trucks_by_enterprise(ent, dev, trips)
    vehicle = np.full(m, -1, np.int64)
    pick = r.random(m)
    for i in np.flatnonzero(delivered):
        own = trucks_of.get(int(seller[i]))
        if own is not None:
            k = own[int(pick[i] * own.size)]
            vehicle[i] = trips["device"][k] + 1
            trips["on"][k, deliver_day[i]] = True  # the delivery is a trip of that truck that day
    dn = delivered
    trade.add(int(dn.sum()), doc_type="delivery_note", chain=ent.rel_chain[rel_idx[dn]], seller=seller[dn],
              buyer=buyer[dn], order=po[dn].tolist(), day=deliver_day[dn], amount_fen=amount_fen[dn],
              commodity=commodity[dn].tolist(), quantity=quantity[dn],
              vehicle=[None if v < 0 else int(v) for v in vehicle[dn]])

    invoice_day = deliver_day + r.poisson(1.5, m)
    invoiced = delivered & (invoice_day < days)
    terms = np.where(ent.role[buyer] == "core", r.choice([60, 90], m), r.choice([30, 45, 60], m))
    due_day = invoice_day + terms
    iv = invoiced
    trade.add(int(iv.sum()), doc_type="invoice", chain=ent.rel_chain[rel_idx[iv]], seller=seller[iv], buyer=buyer[iv],
              order=po[iv].tolist(), day=invoice_day[iv], due_day=due_day[iv].tolist(), amount_fen=amount_fen[iv],
              commodity=commodity[iv].tolist(), quantity=quantity[iv])

    h_at_due = health[buyer, np.minimum(due_day, days - 1)]
    late = r.poisson(30 * _sigmoid(-3.0 * (h_at_due + 0.5)))
    pay_day = due_day + np.round(r.normal(0, 2, m)).astype(np.int64) + late
    pay_day = np.maximum(pay_day, invoice_day)
    paid = invoiced & (pay_day < days) & (pay_day < buyer_default)
    trade.add(int(paid.sum()), doc_type="payment", chain=ent.rel_chain[rel_idx[paid]], seller=seller[paid],
              buyer=buyer[paid], order=po[paid].tolist(), day=pay_day[paid], amount_fen=amount_fen[paid],
              commodity=commodity[paid].tolist(), quantity=quantity[paid])
    _warehouse_receipts(cfg, ent, trade, r)
    return trade


def _warehouse_receipts(cfg: SimConfig, ent: _Enterprises, trade: _Trade, r: np.random.Generator) -> None:
    """Stock-holding enterprises take a warehouse receipt for their stock about monthly; depositor
    and holder are the enterprise itself (seller = buyer), the amount is quantity × reference price."""
    subs = np.array([sub for _, sub, _ in SUBSECTOR_LIST], dtype=object)[ent.subsector_idx]
    holders = np.flatnonzero(np.isin(subs, ("coal_storage", "oil_storage", "crops", "warehousing", "steel_products")))
    offsets = r.integers(0, 30, holders.size)
    for e, offset in zip(holders, offsets, strict=True):
        commodity = SUBSECTOR_LIST[ent.subsector_idx[e]][2]
        price = COMMODITY_PRICES[commodity][1]
        stock = STOCK_T[SECTORS[ent.sector_idx[e]]] * ent.size[e] * 0.5
        for day in range(int(offset), cfg.days, 30):
            qty = round(float(stock * r.uniform(0.3, 0.6)), 3)
            trade.add(1, doc_type="warehouse_receipt", chain=int(ent.chain[e]), seller=int(e), buyer=int(e), day=day,
                      amount_fen=int(round(qty * price * 100)), commodity=commodity, quantity=qty)


def _commodity(ent: _Enterprises, e: int) -> tuple[str, float]:
    """The commodity an enterprise sells and its reference price."""
    commodity = SUBSECTOR_LIST[ent.subsector_idx[e]][2]
    return commodity, COMMODITY_PRICES[commodity][1]


def _trucks_by_enterprise(ent: _Enterprises, dev: _Devices, trips: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    owner = dev.owner[trips["device"]]
    order = np.argsort(owner, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(owner[order])) + 1) if order.size else []
    return {int(owner[g[0]]): g for g in groups}


# --- financing requests --------------------------------------------------------------------------


@dataclass
class _Finance:
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "tenant", "enterprise", "asset_type", "document_row", "invoice_code", "invoice_number", "seller_uscc",
        "buyer_uscc", "amount_fen", "day")})
    trade: _Trade | None = None
    trade_table: pa.Table | None = None

    def add(self, **row: object) -> int:
        for key in self.rows:
            self.rows[key].append(row.get(key))
        return len(self.rows["tenant"]) - 1

    def table(self, cfg: SimConfig) -> pa.Table:
        rows = self.rows
        order = np.lexsort((np.arange(len(rows["day"])), np.array(rows["day"], np.int64)))
        assert self.trade is not None and self.trade.ids is not None
        return pa.table(
            {
                "request_id": np.arange(1, order.size + 1, dtype=np.int64),
                "tenant_id": np.array(rows["tenant"], np.int64)[order] + 1,
                "enterprise_id": np.array(rows["enterprise"], np.int64)[order] + 1,
                "asset_type": [rows["asset_type"][i] for i in order],
                "document_id": self.trade.ids[np.array(rows["document_row"], np.int64)[order]],
                "invoice_code": pa.array([rows["invoice_code"][i] for i in order], pa.string()),
                "invoice_number": pa.array([rows["invoice_number"][i] for i in order], pa.string()),
                "seller_uscc": [rows["seller_uscc"][i] for i in order],
                "buyer_uscc": [rows["buyer_uscc"][i] for i in order],
                "amount": pa.array([Decimal(int(rows["amount_fen"][i])).scaleb(-2) for i in order], MONEY),
                "requested_on": pa.array([cfg.day(int(rows["day"][i])) for i in order], pa.date32()),
            }
        )

    def request_id_of(self, index: int) -> int:
        order = np.lexsort((np.arange(len(self.rows["day"])), np.array(self.rows["day"], np.int64)))
        return int(np.flatnonzero(order == index)[0]) + 1


def _financing(cfg: SimConfig, ent: _Enterprises, trade: _Trade, uscc: list[str]) -> _Finance:
    """About a quarter of invoices are financed (factoring at the chain's bank) a few days after
    issue; about a third of warehouse receipts back an inventory loan."""
    r = rng(cfg, "financing")
    trade.finalise()
    fin = _Finance(trade=trade)
    fin.trade_table = trade.table(cfg)
    tt = fin.trade_table
    docs = {int(i): pos for pos, i in enumerate(tt["document_id"].to_pylist())}
    for row, doc_type in enumerate(trade.cols["doc_type"]):
        if doc_type not in ("invoice", "warehouse_receipt") or trade.cols["fabricated"][row]:
            continue  # fabricated invoices get their (single) financing with their incident
        if r.random() >= (0.25 if doc_type == "invoice" else 0.33):
            continue
        day = int(trade.cols["day"][row]) + int(r.poisson(3))
        if day >= cfg.days:
            continue
        pos = docs[int(trade.ids[row])]  # type: ignore[index]
        seller, buyer = int(trade.cols["seller"][row]), int(trade.cols["buyer"][row])
        fin.add(tenant=int(ent.lender_idx[seller]), enterprise=seller,
                asset_type="receivable" if doc_type == "invoice" else "warehouse_receipt", document_row=row,
                invoice_code=tt["invoice_code"][pos].as_py(), invoice_number=tt["invoice_number"][pos].as_py(),
                seller_uscc=uscc[seller], buyer_uscc=uscc[buyer], amount_fen=int(trade.cols["amount_fen"][row]), day=day)
    return fin


# --- commodity prices ----------------------------------------------------------------------------


def _commodity_prices(cfg: SimConfig) -> pa.Table:
    """Daily reference prices: a geometric random walk with 1.2 % daily volatility around the
    reference level, and for coal and steel one 8-15 % drop somewhere in the horizon, so price-driven
    re-valuation of pledged stock has something to react to."""
    r = rng(cfg, "prices")
    days, names = cfg.days, list(COMMODITY_PRICES)
    out_day, out_name, out_unit, out_price = [], [], [], []
    for c in names:
        unit, base = COMMODITY_PRICES[c]
        log_path = np.cumsum(r.normal(0, 0.012, days))
        if c in ("coal", "steel") and days > 10:
            log_path[int(r.integers(days // 3, days)):] += np.log(1 - r.uniform(0.08, 0.15))
        prices = np.round(base * np.exp(log_path), 2)
        out_day += [cfg.day(d) for d in range(days)]
        out_name += [c] * days
        out_unit += [unit] * days
        out_price += [Decimal(f"{p:.2f}") for p in prices]
    return pa.table({"day": pa.array(out_day, pa.date32()), "commodity": out_name, "unit": out_unit,
                     "price": pa.array(out_price, MONEY)})


# --- ground truth tables -------------------------------------------------------------------------


def _defaults_table(cfg: SimConfig, ent: _Enterprises, default_day: np.ndarray) -> pa.Table:
    idx = np.flatnonzero(default_day >= 0)
    return pa.table({"enterprise_id": ent.ids[idx],
                     "default_on": pa.array([cfg.day(int(default_day[i])) for i in idx], pa.date32()),
                     "cause": ["financial_distress"] * idx.size})


def _health_table(cfg: SimConfig, ent: _Enterprises, health: np.ndarray, activity: np.ndarray) -> pa.Table:
    n, days = health.shape
    return pa.table({
        "enterprise_id": np.repeat(ent.ids, days),
        "day": pa.array(np.tile(np.arange(days, dtype=np.int32), n) + np.int32(cfg.start_date.toordinal() - 719163),
                        pa.int32()).cast(pa.date32()),
        "health": np.round(health.ravel(), 4).astype(np.float32),
        "activity": np.round(activity.ravel(), 4).astype(np.float32),
    })


# --- incidents -----------------------------------------------------------------------------------


class _Incidents:
    """Injected incidents with ground truth, and the device-level effects telemetry must show."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.r = rng(cfg, "incidents")
        self.rows: list[dict[str, object]] = []
        self.effects: list[dict[str, object]] = []
        # About 1.5 % of enterprises per incident type, at least two of each when there is room.
        self.per_type = max(2, round(cfg.enterprises * 0.015))
        self.window = (min(7, cfg.days // 3), max(cfg.days - 2, 1))

    def _add(self, kind: str, enterprise: int, start_ms: int, end_ms: int | None = None, device: int | None = None,
             document: int | None = None, **detail: object) -> None:
        self.rows.append({"incident_type": kind, "enterprise_id": enterprise + 1, "device_id": device,
                          "document_id": document, "start_ts": start_ms, "end_ts": end_ms,
                          "detail": json.dumps(detail, sort_keys=True, ensure_ascii=False)})

    def _effect(self, kind: str, device: int, start_ms: int, end_ms: int, ramp_ms: int = 0, param: float = 0.0,
                capture_day: int = -1) -> None:
        self.effects.append({"kind": kind, "device_id": device + 1, "start_ts": start_ms, "end_ts": end_ms,
                             "ramp_ms": ramp_ms, "param": param, "capture_day": capture_day})

    def _days(self, k: int) -> np.ndarray:
        lo, hi = self.window
        return self.r.integers(lo, hi, k) if hi > lo else np.full(k, lo)

    def _pick(self, candidates: np.ndarray) -> np.ndarray:
        if candidates.size == 0 or self.cfg.days < 4:
            return candidates[:0]
        return self.r.choice(candidates, min(self.per_type, candidates.size), replace=False)

    def production_shutdowns(self, ent: _Enterprises, dev: _Devices, activity: np.ndarray,
                             default_day: np.ndarray) -> np.ndarray:
        """Whole-day shutdowns of plants with machine sensors; activity drops to zero (standby power only)."""
        shutdown = np.zeros(activity.shape, bool)
        machines = dev.owner[dev.of_type("machine_sensor")]
        healthy = np.flatnonzero(default_day < 0)
        chosen = self._pick(np.intersect1d(np.unique(machines), healthy))
        for e, day in zip(chosen, self._days(chosen.size), strict=True):
            length = int(self.r.integers(3, 11))
            end = min(int(day) + length, self.cfg.days)
            shutdown[e, day:end] = True
            activity[e, day:end] = 0.0
            self._add("production_shutdown", int(e), self.cfg.local_midnight_ms(int(day)), self.cfg.local_midnight_ms(end),
                      days=end - int(day))
        return shutdown

    def fabricated_trades(self, ent: _Enterprises, dev: _Devices, trade: _Trade, trips: dict[str, np.ndarray]) -> None:
        """Orders and invoices between real chain partners with no goods behind them: no delivery, or
        a delivery note naming a truck that never left the depot that day; no payment follows."""
        if ent.rel_supplier.size == 0:
            return
        links = self._pick(np.arange(ent.rel_supplier.size))
        trucks_of = _trucks_by_enterprise(ent, dev, trips)
        for link, day in zip(links, self._days(links.size), strict=True):
            seller, buyer = int(ent.rel_supplier[link]), int(ent.rel_buyer[link])
            commodity = SUBSECTOR_LIST[ent.subsector_idx[seller]][2]
            amount = int(self.r.lognormal(np.log(250_000), 0.4) * ent.size[seller] ** 0.5 * 100)
            qty = round(amount / 100 / COMMODITY_PRICES[commodity][1], 3)
            chain = int(ent.rel_chain[link])
            po = trade.add(1, doc_type="purchase_order", chain=chain, seller=seller, buyer=buyer, day=int(day),
                           amount_fen=amount, commodity=commodity, quantity=qty, fabricated=True)
            trade.cols["order"][po[0]] = int(po[0])
            rows = [int(po[0])]
            own = trucks_of.get(seller)
            idle = own[~trips["on"][own, day]] if own is not None else np.zeros(0, np.int64)
            if idle.size and self.r.random() < 0.5:
                rows += trade.add(1, doc_type="delivery_note", chain=chain, seller=seller, buyer=buyer, order=[int(po[0])],
                                  day=int(day), amount_fen=amount, commodity=commodity, quantity=qty,
                                  vehicle=int(trips["device"][idle[0]] + 1), fabricated=True).tolist()
            inv_day = min(int(day) + 1, self.cfg.days - 1)
            rows += trade.add(1, doc_type="invoice", chain=chain, seller=seller, buyer=buyer, order=[int(po[0])],
                              day=inv_day, due_day=[inv_day + 60], amount_fen=amount, commodity=commodity, quantity=qty,
                              fabricated=True).tolist()
            self.rows.append({"incident_type": "fabricated_trade", "enterprise_id": seller + 1, "device_id": None,
                              "_doc_rows": rows, "start_ts": self.cfg.local_midnight_ms(int(day)), "end_ts": None,
                              "detail": None, "_buyer": buyer + 1})

    def double_financing(self, ent: _Enterprises, fin: _Finance, uscc: list[str]) -> None:
        """A financed invoice is financed again at another bank, its number reformatted to slip past
        an exact-match check."""
        trade = fin.trade
        assert trade is not None and trade.ids is not None
        # Give the fabricated invoices a first financing too: that is what they are made for.
        # (Not those made for a voucher: iotfin.sim.vouchers; they exist to obtain the voucher.)
        fab_rows = [row for inc in self.rows if inc["incident_type"] == "fabricated_trade" and not inc.get("_voucher")
                    for row in inc["_doc_rows"]  # type: ignore[attr-defined]
                    if trade.cols["doc_type"][row] == "invoice"]
        tt = fin.trade_table
        assert tt is not None
        pos_of = {int(i): p for p, i in enumerate(tt["document_id"].to_pylist())}
        for row in fab_rows:
            pos = pos_of[int(trade.ids[row])]
            seller, buyer = int(trade.cols["seller"][row]), int(trade.cols["buyer"][row])
            fin.add(tenant=int(ent.lender_idx[seller]), enterprise=seller, asset_type="receivable", document_row=row,
                    invoice_code=tt["invoice_code"][pos].as_py(), invoice_number=tt["invoice_number"][pos].as_py(),
                    seller_uscc=uscc[seller], buyer_uscc=uscc[buyer], amount_fen=int(trade.cols["amount_fen"][row]),
                    day=min(int(trade.cols["day"][row]) + 1, self.cfg.days - 1))
        receivables = np.array([i for i, a in enumerate(fin.rows["asset_type"]) if a == "receivable"], np.int64)
        receivables = receivables[np.array([fin.rows["day"][i] for i in receivables], np.int64) < self.cfg.days - 2] \
            if receivables.size else receivables
        for first in self._pick(receivables):
            first = int(first)
            seller = int(fin.rows["enterprise"][first])
            banks = [t for t in range(1, len(LENDERS)) if t != fin.rows["tenant"][first]]
            day = min(int(fin.rows["day"][first]) + int(self.r.integers(2, 21)), self.cfg.days - 1)
            number = fin.rows["invoice_number"][first]
            code = fin.rows["invoice_code"][first]
            second = fin.add(tenant=int(self.r.choice(banks)), enterprise=seller, asset_type="receivable",
                             document_row=fin.rows["document_row"][first],
                             invoice_code=f"{code[:4]}-{code[4:8]}-{code[8:]}", invoice_number=f"No.{number[:4]} {number[4:]}",
                             seller_uscc=fin.rows["seller_uscc"][first], buyer_uscc=fin.rows["buyer_uscc"][first],
                             amount_fen=fin.rows["amount_fen"][first], day=day)
            self.rows.append({"incident_type": "double_financing", "enterprise_id": seller + 1, "device_id": None,
                              "_doc_rows": [int(fin.rows["document_row"][first])], "start_ts": self.cfg.local_midnight_ms(day),
                              "end_ts": None, "_requests": (first, second)})
        self._finance = fin

    def device_incidents(self, ent: _Enterprises, dev: _Devices, trips: dict[str, np.ndarray], stock: np.ndarray,
                         default_day: np.ndarray) -> None:
        cfg, r = self.cfg, self.r
        # Pledged stock moved out at night: every load cell / tank of the enterprise ramps down.
        stock_devs = np.flatnonzero(np.isin(dev.type_idx, [DEVICE_TYPES.index(t) for t in STOCK_TYPES]))
        seals = dev.of_type("door_seal")
        for e, day in zip(self._pick(np.unique(dev.owner[stock_devs])), self._days(self.per_type), strict=False):
            start = cfg.local_midnight_ms(int(day)) + int(r.uniform(20, 26) * HOUR_MS)
            ramp = int(r.uniform(2, 6) * HOUR_MS)
            frac = float(r.uniform(0.3, 0.7))
            own = stock_devs[dev.owner[stock_devs] == e]
            for d in own:
                self._effect("stock_drop", int(d), start, cfg.end_ms, ramp, frac)
            for d in seals[dev.owner[seals] == e]:
                self._effect("door_open", int(d), start, start + ramp)
            self._add("inventory_moved_out", int(e), start, start + ramp, device=int(dev.ids[own[0]]),
                      fraction_removed=round(frac, 3), devices=[int(dev.ids[d]) for d in own])

        # A truck leaves its operating area: that day's trip goes 1.6-2.5 radii out and back.
        trucks = np.arange(trips["device"].size)
        for k, day in zip(self._pick(trucks), self._days(self.per_type), strict=False):
            device = int(trips["device"][k])
            radius_km = float(dev.params["radius_m"][device]) / 1000.0
            dist = radius_km * float(r.uniform(1.6, 2.5))
            speed = float(r.uniform(60, 75))
            depart = float(r.uniform(6.0, 8.0))
            dwell = float(r.uniform(1.0, 2.0))
            tau = dist / speed  # hours each way
            if depart + 2 * tau + dwell > 23.5:
                dist = (23.5 - depart - dwell) / 2 * speed
                tau = dist / speed
            trips["on"][k, day], trips["dist_km"][k, day], trips["speed_kmh"][k, day] = True, dist, speed
            trips["depart_h"][k, day], trips["dwell_h"][k, day] = depart, dwell
            midnight = cfg.local_midnight_ms(int(day))
            out_h = depart + tau * radius_km / dist
            back_h = depart + tau + dwell + tau * (1 - radius_km / dist)
            self._add("geofence_exit", int(dev.owner[device]), midnight + int(out_h * HOUR_MS),
                      midnight + int(back_h * HOUR_MS), device=device + 1, max_distance_km=round(dist, 1),
                      radius_km=round(radius_km, 1))

        # Devices going dark for one to four days: half of them trucks, half electricity meters.
        meters = dev.of_type("electricity_meter")
        pool = np.concatenate([trips["device"], meters])
        for device, day in zip(self._pick(pool), self._days(self.per_type), strict=False):
            start = cfg.local_midnight_ms(int(day)) + int(r.uniform(0, 24) * HOUR_MS)
            end = min(start + int(r.uniform(24, 96) * HOUR_MS), cfg.end_ms)
            self._effect("dark", int(device), start, end)
            self._add("device_dark", int(dev.owner[device]), start, end, device=int(device) + 1,
                      device_type=DEVICE_TYPES[dev.type_idx[device]])

        # A meter replaying a captured day: from local midnight it re-sends day d-1's values (counter
        # included) with fresh timestamps, for two to five days, hiding whatever happens meanwhile.
        for device, day in zip(self._pick(meters), self._days(self.per_type), strict=False):
            day = max(int(day), 1)
            length = int(r.integers(2, 6))
            start = cfg.local_midnight_ms(day)
            end = cfg.local_midnight_ms(min(day + length, cfg.days))
            self._effect("replay", int(device), start, end, capture_day=day - 1)
            self._add("device_replay", int(dev.owner[device]), start, end, device=int(device) + 1, captured_day=str(cfg.day(day - 1)))

        # Seal broken at night: the door opens between 01:00 and 04:00, the seal reads broken until resealed.
        for device, day in zip(self._pick(seals), self._days(self.per_type), strict=False):
            start = cfg.local_midnight_ms(int(day)) + int(r.uniform(1, 4) * HOUR_MS)
            open_ms = int(r.uniform(0.5, 1.5) * HOUR_MS)
            end = min(start + int(r.uniform(12, 48) * HOUR_MS), cfg.end_ms)
            self._effect("door_open", int(device), start, start + open_ms)
            self._effect("seal_broken", int(device), start, end)
            self._add("device_tamper", int(dev.owner[device]), start, end, device=int(device) + 1, door_open_minutes=open_ms // 60_000)

    def table(self) -> pa.Table:
        fin, trade = getattr(self, "_finance", None), None
        if fin is not None:
            trade = fin.trade
        rows = sorted(self.rows, key=lambda row: (row["start_ts"], row["incident_type"], row["enterprise_id"]))
        out = {k: [] for k in ("incident_id", "incident_type", "enterprise_id", "device_id", "document_id", "start_ts",
                               "end_ts", "detail")}
        for i, row in enumerate(rows, start=1):
            detail = row.get("detail")
            document = row.get("document_id")
            if "_doc_rows" in row and trade is not None:
                ids = [int(trade.ids[x]) for x in row["_doc_rows"]]  # type: ignore[union-attr]
                invoice = [int(trade.ids[x]) for x in row["_doc_rows"] if trade.cols["doc_type"][x] == "invoice"]  # type: ignore[union-attr]
                document = invoice[0] if invoice else ids[0]
                extra: dict[str, object] = {"document_ids": ids}
                if "_buyer" in row:
                    extra["buyer_id"] = row["_buyer"]
                if row.get("_voucher"):
                    extra["voucher_fraud"] = True
                if "_requests" in row and fin is not None:
                    extra["request_ids"] = [fin.request_id_of(x) for x in row["_requests"]]  # type: ignore[union-attr]
                detail = json.dumps(extra, sort_keys=True)
            out["incident_id"].append(i)
            out["incident_type"].append(row["incident_type"])
            out["enterprise_id"].append(row["enterprise_id"])
            out["device_id"].append(row.get("device_id"))
            out["document_id"].append(document)
            out["start_ts"].append(row["start_ts"])
            out["end_ts"].append(row.get("end_ts"))
            out["detail"].append(detail)
        return pa.table(out, schema=pa.schema([
            ("incident_id", pa.int64()), ("incident_type", pa.string()), ("enterprise_id", pa.int64()),
            ("device_id", pa.int64()), ("document_id", pa.int64()), ("start_ts", pa.int64()), ("end_ts", pa.int64()),
            ("detail", pa.string())]))

    def effects_table(self) -> pa.Table:
        schema = pa.schema([("kind", pa.string()), ("device_id", pa.int64()), ("start_ts", pa.int64()),
                            ("end_ts", pa.int64()), ("ramp_ms", pa.int64()), ("param", pa.float64()),
                            ("capture_day", pa.int64())])
        return pa.Table.from_pylist(self.effects, schema=schema)
