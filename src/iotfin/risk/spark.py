"""The feature and scoring batch on Apache Spark (PySpark, the optional `.[spark]` extra).

Same definitions, another engine: the feature table is the one query of `iotfin.risk.features.sql`
(and the daily merge of `iotfin.telemetry.daily.combine_sql`), transpiled from DuckDB to Spark SQL by
sqlglot — no second copy of any feature. Spark reads

- the daily telemetry rollups (`<data dir>/features/daily/day=*.parquet`, one file per UTC day,
  brought up to date by the driver first, only for changed partitions), and
- an export of the system of record to Parquet (`ent`, `dev`, `docs`, `rel`, `prices`, `haircuts`:
  the same Arrow tables the DuckDB engine registers), written to `export_dir`.

On a cluster both paths must be reachable by the executors under the same name (a shared
filesystem, or an object store path — see docs/deployment.md, "Batch on Spark"). Consent scoping
(`--lender`) stays on the driver: it is one row per enterprise and needs the consent registry.

Scoring runs `iotfin.risk.scoring.score_frame` — the online and DuckDB-batch code — on each Arrow
batch of a partition (`mapInPandas`), with the model shipped to the executors in the task closure.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from iotfin.core.errors import NotFound, ValidationError
from iotfin.risk.features.catalogue import CATALOGUE
from iotfin.risk.features.engine import (
    _ARROW,
    DEFAULT_PURPOSE,
    MAX_LOOKBACK,
    FeatureEngine,
    _check_as_of,
    day_number,
)
from iotfin.risk.features.sql import feature_query
from iotfin.risk.models.bundle import load_model
from iotfin.risk.prepare import require_columns
from iotfin.risk.scoring import score_frame
from iotfin.telemetry import daily

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession  # lazy: optional extra

DEFAULT_MASTER = "local[2]"
ENGINES = ("duckdb", "spark")
SOR_TABLES = ("ent", "dev", "docs", "rel", "vch", "vrc", "prices", "haircuts")


def _transpile(sql: str) -> str:
    import sqlglot  # lazy: only the Spark path needs it at run time

    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def spark_feature_query(as_of_day: int) -> str:
    """The feature query of `iotfin.risk.features.sql`, as Spark SQL."""
    return _transpile(feature_query(as_of_day))


def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None) -> SparkSession:
    """A Spark session for the batch: `local[N]` on this machine, or `spark://host:7077`, `yarn`,
    `k8s://https://…` (with the cluster's usual settings in `conf` or spark-defaults.conf)."""
    try:
        from pyspark.sql import SparkSession  # lazy: optional extra
    except ImportError:
        raise ValidationError("--engine spark needs PySpark: pip install 'iotfin[spark]' (and Java 17 or 21)") from None
    builder = SparkSession.builder.master(master).appName("iotfin-risk-batch")
    settings = {
        "spark.sql.session.timeZone": "UTC",  # day numbers only, but keep any date logic UTC
        "spark.ui.enabled": "false",  # banks run closed networks; no web UI port opened by a batch
        "spark.ui.showConsoleProgress": "false",  # the command prints one summary, not progress bars
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if master.startswith("local"):
        # 200 shuffle partitions of a one-machine batch are mostly task overhead; and the Python
        # workers are this interpreter (its iotfin), not whatever `python3` is first on PATH. On a
        # cluster, set PYSPARK_PYTHON / spark.pyspark.python to an environment with iotfin installed.
        settings |= {"spark.sql.shuffle.partitions": "4"}
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # PySpark reads the variable, not the conf
    settings |= dict(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - PySpark raises a bare runtime error when no JVM starts
        raise ValidationError(f"cannot start Spark ({master}): {str(exc).splitlines()[0]} "
                              "(is Java 17 or 21 installed, JAVA_HOME set?)") from None


def export_system_of_record(features: FeatureEngine, export_dir: Path,
                            enterprise_ids: Sequence[int] | None = None) -> dict[str, Path]:
    """Write the system-of-record inputs of the feature query to Parquet (one file per table) and
    return {table name: path}: the same Arrow tables `FeatureEngine.unscoped` registers in DuckDB."""
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    # The engine's own readers (same package): the export is exactly what DuckDB sees.
    inputs = features._sor(enterprise_ids) | features._market()  # noqa: SLF001
    out = {}
    for name in SOR_TABLES:
        path = export_dir / f"{name}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(inputs[name], tmp)
        tmp.replace(path)
        out[name] = path
    return out


def _rollups(features: FeatureEngine, a: int) -> list[Path]:
    # The partitions `FeatureEngine.unscoped` reads: the look-back window and the day before it (a
    # local day starts in the previous UTC partition).
    since = a - MAX_LOOKBACK
    return [f for f in features.refresh_telemetry()
            if since - 1 <= day_number(date.fromisoformat(f.stem[4:])) <= a]


def _daily_schema() -> Any:
    from pyspark.sql import types as T  # lazy: optional extra

    kinds = {pa.int64(): T.LongType(), pa.int32(): T.IntegerType(), pa.float64(): T.DoubleType(), pa.string(): T.StringType()}
    return T.StructType([T.StructField(f.name, kinds[f.type]) for f in daily.DAILY_SCHEMA])


def spark_unscoped(features: FeatureEngine, spark: SparkSession, as_of: date,
                   enterprise_ids: Sequence[int] | None = None, export_dir: Path | None = None) -> tuple[pa.Table, pa.Table]:
    """`FeatureEngine.unscoped` on Spark: (features of every enterprise as of the date, devices table)."""
    a = day_number(_check_as_of(as_of))
    export_dir = Path(export_dir) if export_dir else features.rollup_dir.parent.parent / "exports" / "spark" / as_of.isoformat()
    paths = export_system_of_record(features, export_dir, enterprise_ids)
    for name, path in paths.items():
        spark.read.parquet(str(path)).createOrReplaceTempView(name)
    wanted = _rollups(features, a)
    if wanted:
        spark.read.schema(_daily_schema()).parquet(*map(str, wanted)).createOrReplaceTempView("rollup")
        merged = spark.sql(_transpile(daily.combine_sql("rollup", a - MAX_LOOKBACK, a)))
    else:
        merged = spark.createDataFrame([], _daily_schema())
    if enterprise_ids is not None:
        merged = merged.join(spark.table("dev").select("device_id"), "device_id", "left_semi")
    # The query reads `daily` (and the documents) a dozen times: merged once and kept, not rescanned.
    merged = merged.persist()
    merged.createOrReplaceTempView("daily")
    docs = spark.table("docs").persist()
    docs.createOrReplaceTempView("docs")
    try:
        result = spark.sql(spark_feature_query(a)).toArrow()
    finally:
        merged.unpersist()
        docs.unpersist()
    schema = pa.schema([("enterprise_id", pa.int64())] + [(f.name, _ARROW[f.kind]) for f in CATALOGUE])
    return result.cast(schema), pq.read_table(paths["dev"])


# --- scoring ------------------------------------------------------------------------------------

def _spark_type(dtype: Any) -> Any:
    from pyspark.sql import types as T  # lazy: optional extra

    kind = getattr(dtype, "kind", "O")
    return {"f": T.DoubleType(), "i": T.LongType(), "u": T.LongType(), "b": T.BooleanType()}.get(kind, T.StringType())


_MODELS: dict[str, Any] = {}


def _executor_model(name: str, model_id: str) -> Any:
    from pyspark import SparkFiles  # lazy: optional extra


    if model_id not in _MODELS:
        _MODELS[model_id] = load_model(Path(SparkFiles.get(name)))
    return _MODELS[model_id]


def score_on_spark(spark: SparkSession, model: Any, data: str | Path, out: str | Path,
                   keep: Sequence[str] = ()) -> DataFrame:
    """Score a Parquet table (file or folder) with `model` on Spark; writes a Parquet folder at `out`
    (part files in input order) and returns it as a DataFrame."""
    from pyspark.sql import types as T  # lazy: optional extra


    frame = spark.read.parquet(str(data))
    numeric, categorical = model.inputs
    require_columns(frame.columns, [*numeric, *categorical])
    require_columns(frame.columns, list(keep))
    wanted = list(dict.fromkeys([*keep, *numeric, *categorical]))
    frame = frame.select(*wanted)
    # The output columns and types: score one row (or an empty frame of the input's columns) on the driver.
    probe = score_frame(model, frame.limit(1).toPandas(), keep=list(keep))
    fields = {f.name: f for f in frame.schema.fields}
    schema = T.StructType([fields[c] if c in keep else T.StructField(c, _spark_type(probe[c].dtype))
                           for c in probe.columns])
    keep_list = list(keep)
    # The model travels as its (verified) version folder, not pickled: a LightGBM booster holds C
    # pointers. Each executor loads it once per Python worker.
    folder = Path(model.path).resolve()
    spark.sparkContext.addFile(str(folder), recursive=True)
    name, model_id = folder.name, model.model_id

    def batches(frames: Iterator[Any]) -> Iterator[Any]:
        local = _executor_model(name, model_id)
        for part in frames:
            yield score_frame(local, part, keep=keep_list)

    out = str(out)
    if Path(out).exists():
        shutil.rmtree(out) if Path(out).is_dir() else Path(out).unlink()
    frame.mapInPandas(batches, schema).write.parquet(out)
    return spark.read.parquet(out)


# --- the command line's batch (`iotfin risk features|score --engine …`) ----------------------------

def _engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValidationError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def features_file(features: FeatureEngine, as_of: str | date, out: Path, lender: str | None = None,
                  engine: str = "duckdb", master: str = DEFAULT_MASTER, export_dir: Path | None = None) -> dict[str, Any]:
    """Compute the feature table as of a date on DuckDB or Spark and write it to one Parquet file
    (a feature table is one row per enterprise: small enough for the driver at any bank's size)."""


    started = time.perf_counter()
    _engine(engine)
    if isinstance(as_of, str):
        try:
            as_of = date.fromisoformat(as_of)
        except ValueError:
            raise ValidationError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    if Path(out).suffix.lower() not in (".parquet", ".pq"):
        raise ValidationError(f"--out {out}: the feature table is written as Parquet (.parquet)")
    if lender is not None:
        features.consent.validate(lender, DEFAULT_PURPOSE)
    if engine == "spark":
        table, dev = spark_unscoped(features, spark_session(master), as_of, export_dir=export_dir)
    else:
        table, dev = features.unscoped(as_of)
    withheld = 0
    if lender is not None:
        table = features.scope(table, dev, as_of, lender, DEFAULT_PURPOSE)
        withheld = sum(1 for w in table["withheld"].to_pylist() if w)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return {"engine": engine, "master": master if engine == "spark" else None, "as_of": as_of.isoformat(),
            "rows": table.num_rows, "out": str(out), "lender": lender, "withheld": withheld,
            "seconds": round(time.perf_counter() - started, 3)}


def score_file(data: Path, model_path: Path, out: Path, keep: Sequence[str], engine: str = "spark",
               master: str = DEFAULT_MASTER) -> dict[str, Any]:
    """`iotfin risk score --engine spark`: score a Parquet table on Spark into a Parquet folder."""


    started = time.perf_counter()
    _engine(engine)
    if not Path(data).exists():
        raise NotFound(f"no such data file: {data}")
    if Path(data).suffix.lower() not in (".parquet", ".pq") and not Path(data).is_dir():
        raise ValidationError(f"{data}: --engine spark reads Parquet (a file or a folder of part files)")
    if Path(out).suffix.lower() not in (".parquet", ".pq"):
        raise ValidationError(f"--out {out}: --engine spark writes a Parquet folder (name it .parquet)")
    model = load_model(model_path)
    from pyspark.sql import functions as F  # lazy: after the checks, which need no Spark

    scored = score_on_spark(spark_session(master), model, data, out, keep)
    stats = scored.agg(F.count(F.lit(1)).alias("rows"), F.avg("pd").alias("mean_pd")).first()
    grades = {r["grade"]: r["count"] for r in scored.groupBy("grade").count().collect()}
    return {"engine": "spark", "master": master, "model": model.model_id, "rows": int(stats["rows"]), "out": str(out),
            "grades": dict(sorted(grades.items())), "mean_pd": stats["mean_pd"],
            "seconds": round(time.perf_counter() - started, 3)}
