"""The catalogue is the single definition: docs generated from it, labels bilingual, SQL portable."""

from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot import exp

from iotfin.consent.model import SCOPES
from iotfin.risk.features.catalogue import ALL_TELEMETRY, CATALOGUE, DIMENSIONS, markdown
from iotfin.risk.features.sql import feature_query

DOC = Path(__file__).resolve().parents[2] / "docs" / "feature-catalogue.md"


def test_docs_are_generated_from_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), \
        "docs/feature-catalogue.md is stale: python -m iotfin.risk.features.catalogue > docs/feature-catalogue.md"


def test_every_feature_is_complete() -> None:
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    for f in CATALOGUE:
        assert f.dimension in DIMENSIONS and f.zh and f.en and f.definition and f.lookback_days >= 1
        assert re.search(r"[\u4e00-\u9fff]", f.zh), f.name
        assert all(s in SCOPES or s == ALL_TELEMETRY for s in f.scopes), f.name
    assert {f.dimension for f in CATALOGUE} == set(DIMENSIONS)


def test_the_sql_parses_as_spark_and_duckdb_with_only_known_functions() -> None:
    text = feature_query(20_000)
    assert "A_DAY" not in text and "20000" in text
    for dialect in ("spark", "duckdb"):
        tree = sqlglot.parse_one(text, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        unknown = sorted({f.name for f in tree.find_all(exp.Anonymous)})
        assert unknown == [], f"functions {dialect} does not know: {unknown}"
    # test_features runs the Spark reading of this text (as sqlglot spells out Spark's semantics:
    # x / 0 is NULL, a failed CAST is NULL) on DuckDB and gets the same features.
