"""Transaction credit from voucher history in the feature catalogue (issue 20): confirmed volume, the
core enterprises' punctuality at maturity, the tier — computed point-in-time (only what was issued,
taken, paid or cancelled by the as-of date) by the one feature query, over a real workspace (SQLite)
driven through the real receivables service; and worded in both languages."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.settings import Settings
from iotfin.risk import wording
from iotfin.risk.features.catalogue import BY_NAME
from tests.receivables.world import voucher_history

NAMES = ("t_voucher_volume_180d", "t_voucher_core_on_time_180d", "t_voucher_core_days_late_180d", "t_voucher_tier")


def _features(ws: Workspace, as_of: date, ids: list[int]) -> dict[int, dict]:
    table, _ = ws.features.unscoped(as_of, ids)
    return {r["enterprise_id"]: {n: r[n] for n in NAMES} for r in table.to_pylist()}


def test_voucher_features_are_point_in_time(tmp_path: Path) -> None:
    """Issues, payments and maturities are dated by their business dates; a transfer or a cancellation
    by the day it was recorded (here: today, so the scenario is laid out around today)."""
    ws = Workspace(Settings(data_dir=tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'ws.db'}", simulation=True))
    ws.initialise()
    try:
        history = voucher_history(ws)
        w, d, docs, svc = history.world, history.today, history.docs, ws.receivables
        ids = [w.core, w.tier1, w.tier2a, w.outsider]
        empty = {"t_voucher_volume_180d": Decimal("0.00"), "t_voucher_core_on_time_180d": None,
                 "t_voucher_core_days_late_180d": None, "t_voucher_tier": None}
        assert _features(ws, d - timedelta(days=101), ids)[w.tier1] == empty
        early = _features(ws, d - timedelta(days=50), ids)
        assert early[w.tier1] == {"t_voucher_volume_180d": Decimal("120000.00"), "t_voucher_core_on_time_180d": None,
                                  "t_voucher_core_days_late_180d": None, "t_voucher_tier": 1}
        assert early[w.core]["t_voucher_volume_180d"] == Decimal("0.00")  # it issued them: not its confirmed volume
        assert early[w.outsider] == empty
        # the small one paid on time; the large one not yet matured
        mid = _features(ws, d - timedelta(days=15), ids)
        assert (mid[w.tier1]["t_voucher_core_on_time_180d"], mid[w.tier1]["t_voucher_core_days_late_180d"]) == (1.0, 0.0)
        # the large one matured ten days ago and was unpaid *as of three days after*
        after = _features(ws, d - timedelta(days=7), ids)
        for who in (w.tier1, w.core):  # the holder sees its cores' punctuality; the core its own
            assert after[who]["t_voucher_core_on_time_180d"] == 0.5, who
            assert after[who]["t_voucher_core_days_late_180d"] == (0 + 3) / 2, who
        paid = _features(ws, d - timedelta(days=1), ids)
        assert paid[w.tier1]["t_voucher_core_days_late_180d"] == (0 + 5) / 2
        assert paid[w.tier2a] == empty  # the part passed on to it today is not known the day before
        now = _features(ws, d, ids)
        assert now[w.tier2a] == {"t_voucher_volume_180d": Decimal("30000.00"), "t_voucher_core_on_time_180d": None,
                                 "t_voucher_core_days_late_180d": None, "t_voucher_tier": 2}
        assert now[w.tier1]["t_voucher_volume_180d"] == Decimal("180000.00") and now[w.tier1]["t_voucher_tier"] == 1

        # a cancellation counts from the day it was recorded: before it the voucher was confirmed volume
        gone = svc.issue(w.core, w.tier1, "50000.00", d - timedelta(days=3), d + timedelta(days=60), docs)
        svc.cancel(w.core, gone["id"])
        assert _features(ws, d - timedelta(days=1), [w.tier1])[w.tier1]["t_voucher_volume_180d"] == Decimal("230000.00")
        assert _features(ws, d, [w.tier1])[w.tier1]["t_voucher_volume_180d"] == Decimal("180000.00")
    finally:
        ws.close()


def test_voucher_features_are_catalogued_and_worded_in_both_languages() -> None:
    for name in NAMES:
        f = BY_NAME[name]
        assert f.dimension == "transaction" and f.scopes == ("trade_documents",) and f.zh and f.en
        zh, en = wording.subject(name)
        assert zh != en and any("\u4e00" <= c <= "\u9fff" for c in zh)
    zh, en = wording.low("t_voucher_core_on_time_180d", 0.8)
    assert zh == "其所持凭证的核心企业按期兑付率偏低（低于80%）" and en.endswith("was low (below 80%)")
    zh, en = wording.high("t_voucher_core_days_late_180d", 20)
    assert "20天及以上" in zh and "20 days or more" in en
    zh, en = wording.low("t_voucher_volume_180d", 100000)
    assert "低于10万元" in zh and "CNY 100,000" in en
