"""The feature SQL: per-enterprise aggregates (common table expressions) and the one SELECT that
evaluates every catalogue expression over them. Pure text, no I/O.

Written in a portable subset so the same text runs on DuckDB (embedded) and Spark SQL: only
integer day numbers (no dialect date functions), CASE / COALESCE / NULLIF / CAST, SUM / AVG /
COUNT / MIN / MAX / STDDEV_SAMP, joins, UNION ALL and GROUP BY with explicit columns. The as-of day
is substituted as an integer literal (`A_DAY`), so no dialect's parameter syntax is needed either.

Inputs (tables or views of these names and columns; `iotfin.risk.features.engine` provides them):
  ent(enterprise_id, founded_day, registered_capital DECIMAL(18,2), sector, region_code, tax_grade,
      litigation_count, key_person_changes)
  dev(device_id, enterprise_id, device_type, commodity, installed_day, interval_s, primary_metric)
  daily(device_id, metric, lday, n, total, vmax, last_v)  -- telemetry per device, metric, local day
  docs(document_id, doc_type, seller_id, buyer_id, order_id, issued_day, due_day, amount DECIMAL(18,2),
       vehicle_device_id)
  rel(supplier_id, buyer_id, core_enterprise_id, since_day)
  vch(voucher_id, issuer_id, supplier_id, total_fen, issued_day, matures_day, paid_day, cancelled_day)
  vrc(voucher_id, enterprise_id, fen, day, tier)  -- each taking of a voucher (issue to it, accepted transfer)
  prices(day, commodity, price DECIMAL(18,2));  haircuts(commodity, haircut DECIMAL(4,2))
Point-in-time: every aggregate reads only rows dated on or before A_DAY.
"""

from __future__ import annotations

from iotfin.risk.features.catalogue import CATALOGUE, Feature

AGGREGATES = """
en_d AS (
  SELECT d.enterprise_id, x.lday, SUM(x.total / x.n) AS kw
  FROM daily x JOIN dev d ON x.device_id = d.device_id
  WHERE x.metric = 'power_kw' AND x.lday <= A_DAY AND x.lday > A_DAY - 395
  GROUP BY d.enterprise_id, x.lday),
en AS (
  SELECT enterprise_id,
    SUM(CASE WHEN lday > A_DAY - 30 THEN kw * 24 END) AS kwh_30d,
    SUM(CASE WHEN lday > A_DAY - 120 AND lday <= A_DAY - 30 THEN kw * 24 END) AS kwh_31_120,
    AVG(CASE WHEN lday > A_DAY - 30 THEN kw END) AS kw_30d,
    MAX(CASE WHEN lday > A_DAY - 365 THEN kw END) AS kw_peak_365d,
    SUM(CASE WHEN lday > A_DAY - 395 AND lday <= A_DAY - 365 THEN kw * 24 END) AS kwh_30d_ly,
    COUNT(CASE WHEN lday > A_DAY - 395 AND lday <= A_DAY - 365 THEN 1 END) AS days_30d_ly
  FROM en_d GROUP BY enterprise_id),
cap AS (
  SELECT enterprise_id, SUM(peak) AS capacity_kw FROM (
    SELECT d.enterprise_id, x.device_id, MAX(x.vmax) AS peak
    FROM daily x JOIN dev d ON x.device_id = d.device_id
    WHERE x.metric = 'power_kw' AND x.lday <= A_DAY AND x.lday > A_DAY - 365
    GROUP BY d.enterprise_id, x.device_id) p
  GROUP BY enterprise_id),
eq AS (
  SELECT d.enterprise_id, SUM(COALESCE(r.runtime, 0)) AS runtime_min,
    SUM(1440 * (A_DAY - CASE WHEN d.installed_day > A_DAY - 30 THEN d.installed_day - 1 ELSE A_DAY - 30 END)) AS possible_min
  FROM dev d LEFT JOIN (
    SELECT device_id, SUM(total) AS runtime FROM daily
    WHERE metric = 'runtime_min' AND lday <= A_DAY AND lday > A_DAY - 30 GROUP BY device_id) r
    ON r.device_id = d.device_id
  WHERE d.device_type = 'machine_sensor' AND d.installed_day <= A_DAY
  GROUP BY d.enterprise_id),
inv_d AS (
  SELECT d.enterprise_id, x.lday, SUM(x.total / x.n) AS stock
  FROM daily x JOIN dev d ON x.device_id = d.device_id
  WHERE x.metric IN ('weight_t', 'volume_m3') AND x.lday <= A_DAY AND x.lday > A_DAY - 30
  GROUP BY d.enterprise_id, x.lday),
inv AS (
  SELECT enterprise_id, AVG(stock) AS mean_30, STDDEV_SAMP(stock) AS sd_30,
    AVG(CASE WHEN lday > A_DAY - 7 THEN stock END) AS mean_last7,
    AVG(CASE WHEN lday <= A_DAY - 23 THEN stock END) AS mean_first7
  FROM inv_d GROUP BY enterprise_id),
px AS (
  SELECT p.commodity, p.price FROM prices p JOIN (
    SELECT commodity, MAX(day) AS day FROM prices WHERE day <= A_DAY GROUP BY commodity) m
    ON p.commodity = m.commodity AND p.day = m.day),
coll AS (
  SELECT d.enterprise_id,
    CAST(ROUND(SUM(CAST(x.last_v AS DECIMAL(18, 3)) * px.price * h.haircut), 2) AS DECIMAL(18, 2)) AS value
  FROM daily x
  JOIN (SELECT device_id, MAX(lday) AS lday FROM daily
        WHERE metric IN ('weight_t', 'volume_m3') AND lday <= A_DAY AND lday > A_DAY - 3 GROUP BY device_id) l
    ON x.device_id = l.device_id AND x.lday = l.lday
  JOIN dev d ON x.device_id = d.device_id
  JOIN px ON px.commodity = d.commodity
  JOIN haircuts h ON h.commodity = d.commodity
  WHERE x.metric IN ('weight_t', 'volume_m3')
  GROUP BY d.enterprise_id),
live AS (
  SELECT t.enterprise_id, COUNT(*) AS heads,
    CAST(ROUND(COUNT(*) * MAX(px.price) * MAX(h.haircut), 2) AS DECIMAL(18, 2)) AS value
  FROM (SELECT DISTINCT d.enterprise_id, x.device_id FROM daily x JOIN dev d ON x.device_id = d.device_id
        WHERE x.metric = 'activity' AND x.lday <= A_DAY AND x.lday > A_DAY - 2) t
  JOIN px ON px.commodity = 'cattle' JOIN haircuts h ON h.commodity = 'cattle'
  GROUP BY t.enterprise_id),
cov AS (
  SELECT d.enterprise_id, COUNT(*) AS installed,
    SUM(CASE WHEN r.last_day > A_DAY - 7 THEN 1 ELSE 0 END) AS reporting_7d,
    SUM(COALESCE(r.readings, 0)) AS readings_30d,
    SUM(CAST(86400 / d.interval_s AS BIGINT)
        * (A_DAY - CASE WHEN d.installed_day > A_DAY - 30 THEN d.installed_day - 1 ELSE A_DAY - 30 END)) AS expected_30d
  FROM dev d LEFT JOIN (
    SELECT device_id, metric, MAX(lday) AS last_day, SUM(CASE WHEN lday > A_DAY - 30 THEN n ELSE 0 END) AS readings
    FROM daily WHERE lday <= A_DAY AND lday > A_DAY - 30 GROUP BY device_id, metric) r
    ON r.device_id = d.device_id AND r.metric = d.primary_metric
  WHERE d.installed_day <= A_DAY
  GROUP BY d.enterprise_id),
hist AS (
  SELECT d.enterprise_id, COUNT(DISTINCT x.lday) AS data_days
  FROM daily x JOIN dev d ON x.device_id = d.device_id
  WHERE x.lday <= A_DAY AND x.lday > A_DAY - 365
  GROUP BY d.enterprise_id),
inv_docs AS (
  SELECT * FROM docs WHERE doc_type = 'invoice' AND issued_day <= A_DAY AND issued_day > A_DAY - 365),
paid AS (
  SELECT order_id, MIN(issued_day) AS paid_day FROM docs
  WHERE doc_type = 'payment' AND issued_day <= A_DAY GROUP BY order_id),
sal AS (
  SELECT seller_id AS enterprise_id,
    SUM(CASE WHEN issued_day > A_DAY - 90 THEN amount END) AS sales_90d,
    SUM(CASE WHEN issued_day > A_DAY - 180 AND issued_day <= A_DAY - 90 THEN amount END) AS sales_prior_90d,
    SUM(CASE WHEN issued_day > A_DAY - 30 THEN amount END) AS sales_30d,
    SUM(CASE WHEN issued_day > A_DAY - 120 AND issued_day <= A_DAY - 30 THEN amount END) AS sales_31_120
  FROM inv_docs GROUP BY seller_id),
rec AS (
  SELECT i.seller_id AS enterprise_id,
    SUM(CASE WHEN p.paid_day IS NULL THEN i.amount ELSE 0 END) AS outstanding,
    SUM(CASE WHEN i.due_day <= A_DAY AND i.due_day > A_DAY - 180 THEN i.amount ELSE 0 END) AS due_180d,
    SUM(CASE WHEN i.due_day < A_DAY AND i.due_day > A_DAY - 180 AND p.paid_day IS NULL THEN i.amount ELSE 0 END) AS overdue
  FROM inv_docs i LEFT JOIN paid p ON p.order_id = i.order_id
  GROUP BY i.seller_id),
pay AS (
  SELECT i.buyer_id AS enterprise_id,
    AVG(CASE WHEN p.paid_day IS NOT NULL AND p.paid_day <= i.due_day THEN 1.0 ELSE 0.0 END) AS on_time_rate
  FROM inv_docs i LEFT JOIN paid p ON p.order_id = i.order_id
  WHERE i.due_day <= A_DAY AND i.due_day > A_DAY - 180
  GROUP BY i.buyer_id),
core AS (
  SELECT enterprise_id, MIN(core_enterprise_id) AS core_id, MIN(since_day) AS since_day FROM (
    SELECT supplier_id AS enterprise_id, core_enterprise_id, since_day FROM rel WHERE since_day <= A_DAY
    UNION ALL
    SELECT buyer_id AS enterprise_id, core_enterprise_id, since_day FROM rel WHERE since_day <= A_DAY) r
  GROUP BY enterprise_id),
cp_pair AS (
  SELECT enterprise_id, counterparty_id, SUM(amount) AS amount FROM (
    SELECT seller_id AS enterprise_id, buyer_id AS counterparty_id, amount FROM inv_docs WHERE issued_day > A_DAY - 180
    UNION ALL
    SELECT buyer_id AS enterprise_id, seller_id AS counterparty_id, amount FROM inv_docs WHERE issued_day > A_DAY - 180) s
  GROUP BY enterprise_id, counterparty_id),
cp AS (
  SELECT c.enterprise_id, COUNT(*) AS n, SUM(c.amount) AS total,
    SUM(CASE WHEN c.counterparty_id = k.core_id THEN c.amount ELSE 0 END) AS core_amount,
    SUM((CAST(c.amount AS DOUBLE) / t.total) * (CAST(c.amount AS DOUBLE) / t.total)) AS hhi
  FROM cp_pair c
  JOIN (SELECT enterprise_id, CAST(SUM(amount) AS DOUBLE) AS total FROM cp_pair GROUP BY enterprise_id) t
    ON t.enterprise_id = c.enterprise_id
  LEFT JOIN core k ON k.enterprise_id = c.enterprise_id
  WHERE t.total > 0
  GROUP BY c.enterprise_id),
chk AS (
  SELECT i.seller_id AS enterprise_id, COUNT(*) AS no_delivery
  FROM inv_docs i LEFT JOIN (
    SELECT DISTINCT order_id FROM docs WHERE doc_type = 'delivery_note' AND issued_day <= A_DAY) dn
    ON dn.order_id = i.order_id
  WHERE i.issued_day > A_DAY - 90 AND dn.order_id IS NULL
  GROUP BY i.seller_id),
gps AS (
  SELECT n.seller_id AS enterprise_id, COUNT(*) AS unmatched
  FROM docs n LEFT JOIN daily x
    ON x.device_id = n.vehicle_device_id AND x.metric = 'speed_kmh' AND x.lday = n.issued_day
  WHERE n.doc_type = 'delivery_note' AND n.vehicle_device_id IS NOT NULL
    AND n.issued_day <= A_DAY AND n.issued_day > A_DAY - 90 AND (x.vmax IS NULL OR x.vmax < 5)
  GROUP BY n.seller_id),
vr AS (
  SELECT r.enterprise_id, r.voucher_id, r.fen, r.day, r.tier
  FROM vrc r JOIN vch v ON v.voucher_id = r.voucher_id
  WHERE r.day <= A_DAY AND v.issued_day <= A_DAY AND (v.cancelled_day IS NULL OR v.cancelled_day > A_DAY)),
vq AS (
  SELECT enterprise_id,
    SUM(CASE WHEN day > A_DAY - 180 THEN fen ELSE 0 END) AS fen_180d,
    MIN(CASE WHEN day > A_DAY - 365 THEN tier END) AS tier_365d
  FROM vr GROUP BY enterprise_id),
vp AS (
  SELECT k.enterprise_id,
    AVG(CASE WHEN v.paid_day IS NOT NULL AND v.paid_day <= A_DAY AND v.paid_day <= v.matures_day THEN 1.0 ELSE 0.0 END)
      AS on_time,
    AVG(CAST(CASE WHEN v.paid_day IS NOT NULL AND v.paid_day <= A_DAY AND v.paid_day <= v.matures_day THEN 0
                  WHEN v.paid_day IS NOT NULL AND v.paid_day <= A_DAY THEN v.paid_day - v.matures_day
                  ELSE A_DAY - v.matures_day END AS DOUBLE)) AS days_late
  FROM (SELECT DISTINCT enterprise_id, voucher_id FROM (
          SELECT enterprise_id, voucher_id FROM vr
          UNION ALL
          SELECT issuer_id AS enterprise_id, voucher_id FROM vch
          WHERE issued_day <= A_DAY AND (cancelled_day IS NULL OR cancelled_day > A_DAY)) u) k
  JOIN vch v ON v.voucher_id = k.voucher_id
  WHERE v.matures_day < A_DAY AND v.matures_day >= A_DAY - 180
  GROUP BY k.enterprise_id)
"""

JOINS = """
FROM ent
LEFT JOIN en ON en.enterprise_id = ent.enterprise_id
LEFT JOIN cap ON cap.enterprise_id = ent.enterprise_id
LEFT JOIN eq ON eq.enterprise_id = ent.enterprise_id
LEFT JOIN inv ON inv.enterprise_id = ent.enterprise_id
LEFT JOIN coll ON coll.enterprise_id = ent.enterprise_id
LEFT JOIN live ON live.enterprise_id = ent.enterprise_id
LEFT JOIN cov ON cov.enterprise_id = ent.enterprise_id
LEFT JOIN hist ON hist.enterprise_id = ent.enterprise_id
LEFT JOIN sal ON sal.enterprise_id = ent.enterprise_id
LEFT JOIN rec ON rec.enterprise_id = ent.enterprise_id
LEFT JOIN pay ON pay.enterprise_id = ent.enterprise_id
LEFT JOIN core ON core.enterprise_id = ent.enterprise_id
LEFT JOIN cp ON cp.enterprise_id = ent.enterprise_id
LEFT JOIN chk ON chk.enterprise_id = ent.enterprise_id
LEFT JOIN gps ON gps.enterprise_id = ent.enterprise_id
LEFT JOIN vq ON vq.enterprise_id = ent.enterprise_id
LEFT JOIN vp ON vp.enterprise_id = ent.enterprise_id
WHERE ent.founded_day <= A_DAY
"""

_CASTS = {"double": "DOUBLE", "decimal": "DECIMAL(18, 2)", "integer": "BIGINT", "string": "STRING"}


def _select(f: Feature) -> str:
    return f"CAST({f.sql} AS {_CASTS[f.kind]}) AS {f.name}"


def feature_query(as_of_day: int, features: tuple[Feature, ...] = CATALOGUE) -> str:
    """The whole query for one as-of day (days since 1970-01-01), one row per enterprise."""
    if not isinstance(as_of_day, int):
        raise TypeError("as_of_day must be an int day number")
    select = ",\n  ".join(["ent.enterprise_id"] + [_select(f) for f in features])
    text = f"WITH {AGGREGATES.strip()}\nSELECT\n  {select}\n{JOINS.strip()}\nORDER BY ent.enterprise_id"
    return text.replace("A_DAY", str(as_of_day))
