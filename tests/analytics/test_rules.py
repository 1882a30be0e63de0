"""The pure rules of the industry indices and the monitor's firm-specific / sector-wide split (issue 24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iotfin.analytics.model import (
    IndexSettings,
    period_index,
    relative_features,
    resumed_day,
    resumption,
    scope_of,
)
from iotfin.monitor.model import MIN_PEERS, peer_scope


def _firm_days(days: int, firms: int, drop: dict[int, float], from_day: int) -> pd.DataFrame:
    rows = []
    for e in range(1, firms + 1):
        for d in range(days):
            kwh = 100.0 * (drop.get(e, 1.0) if d >= from_day else 1.0)
            rows.append({"enterprise_id": e, "lday": d, "energy_kwh": kwh, "runtime_min": 600.0 * (kwh / 100),
                         "capacity_min": 1440.0})
    return pd.DataFrame(rows)


def test_relative_features_are_point_in_time_and_private() -> None:
    frame = _firm_days(120, 8, {1: 0.3}, 100)  # firm 1 falls to 30 % from day 100; its peers do not
    sectors = {e: "m" for e in range(1, 9)}
    out = relative_features(frame, sectors, [90, 110], min_firms=5).set_index(["enterprise_id", "as_of_day"])
    assert out.loc[(1, 90), "a_rel_energy_7d"] == pytest.approx(1.0)
    # last 7 days at 30 against the 28 before (24 days at 100, 4 at 30); the peers are flat
    assert out.loc[(1, 110), "a_rel_energy_7d"] == pytest.approx(30 / ((24 * 100 + 4 * 30) / 28))
    assert 1.0 < out.loc[(2, 110), "a_rel_energy_7d"] < 1.2  # its peers include the one that fell
    # the future does not leak: changing days after the as-of date leaves the features unchanged
    later = frame.copy()
    later.loc[later["lday"] > 90, "energy_kwh"] *= 5
    again = relative_features(later, sectors, [90], min_firms=5).set_index(["enterprise_id", "as_of_day"])
    assert again.loc[(1, 90)].equals(out.loc[(1, 90)])
    # too few peers: nothing, so no firm is ever compared with a group that would reveal a member
    few = relative_features(frame[frame["enterprise_id"] <= 5], {e: "m" for e in range(1, 6)}, [110], min_firms=5)
    assert few["a_rel_energy_7d"].isna().all()


def test_resumption_uses_thirty_percent_of_the_pre_shock_average() -> None:
    frame = _firm_days(40, 3, {}, 0)
    frame.loc[(frame["lday"] >= 20) & (frame["lday"] < 25), "energy_kwh"] = 10.0  # all stop on day 20
    frame.loc[(frame["enterprise_id"] == 2) & frame["lday"].between(25, 27), "energy_kwh"] = 29.0  # 29 %: not yet
    frame.loc[(frame["enterprise_id"] == 3) & frame["lday"].between(25, 30), "energy_kwh"] = 31.0  # 31 %: back
    per_day = resumption(frame[["enterprise_id", "lday", "energy_kwh"]], 20, IndexSettings())
    back = resumed_day(per_day, 20)
    assert back.to_dict() == {1: 25, 2: 28, 3: 25}


def test_scope_of_a_drop() -> None:
    assert scope_of(0.8, 0.7, peers=10, min_firms=5) == "sector_wide"
    assert scope_of(0.8, 0.05, peers=10, min_firms=5) == "firm_specific"
    assert scope_of(0.8, 0.7, peers=3, min_firms=5) == "unknown"


def test_monitor_peer_scope_by_sector_or_region() -> None:
    n = 12
    sector = np.array([-1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    region = np.array([-1, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0])
    reporting = np.ones(n, bool)
    reporting[0] = False
    quiet = np.zeros(n, bool)
    quiet[[1, 2, 3, 4]] = True  # sector 0 stops together (a holiday)
    assert peer_scope(1, [sector, region], quiet, reporting) == ("sector_wide", 3, 4)
    quiet[:] = False
    quiet[6] = True  # one firm of sector 1 stops alone
    scope, stopped, peers = peer_scope(6, [sector, region], quiet, reporting)
    assert (scope, stopped) == ("firm_specific", 0) and peers >= MIN_PEERS
    quiet[[1, 6, 11]] = True  # region 0 loses power: firms 1, 6 and 11 (sectors 0 and 1)
    assert peer_scope(6, [sector, region], quiet, reporting)[0] == "firm_specific"  # 2 of 2 region peers: too few
    assert peer_scope(6, [np.zeros(n, np.int64)], quiet, reporting)[0] == "firm_specific"


def test_period_index_compares_daily_averages_across_a_leap_february() -> None:
    feb_2027 = pd.DataFrame({"lday": range(28), "value": 100.0})
    feb_2028 = pd.DataFrame({"lday": range(400, 429), "value": 100.0})  # 29 days, the same daily level
    assert period_index(feb_2028["value"], feb_2028["lday"], feb_2027["value"], feb_2027["lday"]) == pytest.approx(100.0)
    assert feb_2028["value"].sum() / feb_2027["value"].sum() * 100 == pytest.approx(100 * 29 / 28)  # totals would not
