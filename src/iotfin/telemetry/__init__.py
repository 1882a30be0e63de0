"""Columnar telemetry store: Parquet partitioned by UTC day, queried with DuckDB."""
