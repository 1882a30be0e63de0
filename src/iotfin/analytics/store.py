"""Queries of the industry indices: the firm registry from the system of record (SQL), and the DuckDB
SQL over the telemetry store's daily aggregates and the analytics folder's Parquet files.

Files (under `<data_dir>/analytics/`): `rollup/` the telemetry kernel's per-UTC-day device aggregates
of the metrics the indices read; `firm_day/lday=N.parquet` one row per firm and local day;
`indices.parquet` every cell's daily index rows; `state.json` which sources each firm-day was built from.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import Engine, text

from iotfin.analytics.model import GPS_INTERVAL_H, MACHINE_SLOT_MIN
from iotfin.telemetry import daily

METRICS = ("power_kw", "runtime_min", "speed_kmh", "weight_t")
FIRM_SCHEMA = pa.schema([("enterprise_id", pa.int64()), ("sector", pa.string()), ("region_code", pa.string()),
                         ("chain_id", pa.string())])
DEVICE_SCHEMA = pa.schema([("device_id", pa.int64()), ("enterprise_id", pa.int64())])


def load_firms(engine: Engine) -> tuple[pa.Table, pa.Table]:
    """(firms: enterprise, sector, region, one supply chain or 'none'; devices: device -> enterprise)."""
    with engine.connect() as conn:
        firms = conn.execute(text(
            "SELECT e.id, e.sector, e.region_code, "
            "(SELECT MIN(m.chain_id) FROM chain_members m WHERE m.enterprise_id = e.id) "
            "FROM enterprises e ORDER BY e.id")).all()
        devices = conn.execute(text("SELECT id, enterprise_id FROM devices ORDER BY id")).all()
    firm_table = pa.table({"enterprise_id": [int(r[0]) for r in firms], "sector": [str(r[1]) for r in firms],
                           "region_code": [str(r[2]) for r in firms],
                           "chain_id": ["none" if r[3] is None else str(int(r[3])) for r in firms]}, schema=FIRM_SCHEMA)
    device_table = pa.table({"device_id": [int(r[0]) for r in devices], "enterprise_id": [int(r[1]) for r in devices]},
                            schema=DEVICE_SCHEMA)
    return firm_table, device_table


#: The columns of `firm_day_sql`'s rows (an empty frame has them too).
FIRM_DAY_COLUMNS = [("enterprise_id", pa.int64()), ("lday", pa.int32()), ("energy_kwh", pa.float64()),
                    ("runtime_min", pa.float64()), ("capacity_min", pa.float64()), ("truck_km", pa.float64()),
                    ("stock_t", pa.float64())]


def firm_day_sql(source: str) -> str:
    """Firm-day measures from device-day aggregates (`source`: rows of `daily.combine`) joined to `devs`."""
    return (
        "SELECT m.enterprise_id, d.lday, "
        "SUM(CASE WHEN d.metric = 'power_kw' THEN d.total / d.n * CAST(24 AS DOUBLE) END) AS energy_kwh, "
        "SUM(CASE WHEN d.metric = 'runtime_min' THEN d.total END) AS runtime_min, "
        f"SUM(CASE WHEN d.metric = 'runtime_min' THEN CAST(d.n AS DOUBLE) * CAST({MACHINE_SLOT_MIN} AS DOUBLE) END) AS capacity_min, "
        f"SUM(CASE WHEN d.metric = 'speed_kmh' THEN d.total * CAST({GPS_INTERVAL_H!r} AS DOUBLE) END) AS truck_km, "
        "SUM(CASE WHEN d.metric = 'weight_t' THEN d.total / d.n END) AS stock_t "
        f"FROM ({source}) d JOIN devs m ON m.device_id = d.device_id GROUP BY m.enterprise_id, d.lday")


def firm_days(con: duckdb.DuckDBPyConnection, rollups: list[Path], devices: pa.Table, lday: int) -> pa.Table:
    """One local day's firm measures; the day spans two UTC partitions, both in `rollups`."""
    con.register("devs", devices)
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in rollups)
    source = daily.combine_sql(f"read_parquet([{listing}])", lday, lday)
    try:
        return con.sql(firm_day_sql(source) + " ORDER BY 1").to_arrow_table()
    finally:
        con.unregister("devs")


CELL_SETS = ("(lday)", "(lday, sector)", "(lday, region_code)", "(lday, chain_id)", "(lday, sector, region_code)",
             "(lday, sector, chain_id)", "(lday, sector, region_code, chain_id)")


def cells_sql(firm_day_glob: str) -> str:
    """Sums of the firm-day measures per (day, cell) over the grouping sets, '*' for 'all'."""
    dims = ", ".join(f"CASE WHEN GROUPING({c}) = 1 THEN '*' ELSE {c} END AS {c}"
                     for c in ("sector", "region_code", "chain_id"))
    return (
        f"SELECT lday, {dims}, "
        "COUNT(energy_kwh) AS firms_energy, COUNT(runtime_min) AS firms_operating, "
        "COUNT(truck_km) AS firms_logistics, COUNT(stock_t) AS firms_inventory, "
        "SUM(energy_kwh) AS energy_kwh, SUM(runtime_min) AS runtime_min, SUM(capacity_min) AS capacity_min, "
        "SUM(truck_km) AS truck_km, SUM(stock_t) AS stock_t "
        f"FROM read_parquet('{firm_day_glob}') f JOIN firms USING (enterprise_id) "
        f"GROUP BY GROUPING SETS ({', '.join(CELL_SETS)})")


def cells(con: duckdb.DuckDBPyConnection, folder: Path, firms: pa.Table) -> pa.Table:
    con.register("firms", firms)
    try:
        return con.sql(cells_sql(str(folder / "lday=*.parquet").replace("'", "''"))).to_arrow_table()
    finally:
        con.unregister("firms")


def firm_frame(con: duckdb.DuckDBPyConnection, folder: Path, since: int, until: int) -> pa.Table:
    """Firm-day rows between two local days (inclusive); none before the first update."""
    glob = str(folder / "lday=*.parquet").replace("'", "''")
    if not any(folder.glob("lday=*.parquet")):  # read_parquet refuses an empty glob
        return pa.table({c: pa.array([], t) for c, t in FIRM_DAY_COLUMNS})
    return con.sql(f"SELECT * FROM read_parquet('{glob}') WHERE lday BETWEEN {int(since)} AND {int(until)} "
                   "ORDER BY enterprise_id, lday").to_arrow_table()
