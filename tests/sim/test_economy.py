"""Properties of the synthetic economy: sectors, chains, identifiers, trade flow, defaults, money."""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from iotfin.core.errors import ValidationError
from iotfin.core.ids import is_valid_resident_id, is_valid_uscc
from iotfin.sim import SECTORS, SimConfig, SimDataset
from iotfin.sim.economy import build_economy


def test_every_sector_and_several_chains_with_tiers(small_sim: SimDataset) -> None:
    ent = small_sim.table("enterprises").to_pylist()
    assert {e["sector"] for e in ent} == set(SECTORS)
    cores = [e for e in ent if e["role"] == "core"]
    assert len(cores) >= 3
    assert len({e["chain_id"] for e in cores}) == len(cores)
    tiers = Counter((e["role"], e["tier"]) for e in ent if e["role"] in ("supplier", "buyer"))
    assert tiers[("supplier", 1)] and tiers[("buyer", 1)] and (tiers[("supplier", 2)] or tiers[("buyer", 2)])


def test_relationships_follow_the_tiers(small_sim: SimDataset) -> None:
    ent = {e["enterprise_id"]: e for e in small_sim.table("enterprises").to_pylist()}
    for rel in small_sim.table("relationships").to_pylist():
        supplier, buyer = ent[rel["supplier_id"]], ent[rel["buyer_id"]]
        assert rel["supplier_id"] != rel["buyer_id"]
        assert supplier["chain_id"] == buyer["chain_id"] == rel["chain_id"]
        if rel["tier"] == 1:
            assert rel["core_enterprise_id"] in (rel["supplier_id"], rel["buyer_id"])
        else:  # tier 2 trades with a tier 1 member, not with the core
            assert rel["core_enterprise_id"] not in (rel["supplier_id"], rel["buyer_id"])
        assert rel["since"] >= max(supplier["founded_on"], buyer["founded_on"])


def test_identifiers_carry_valid_check_characters(small_sim: SimDataset) -> None:
    ent = small_sim.table("enterprises")
    usccs = ent["uscc"].to_pylist()
    assert len(set(usccs)) == len(usccs)
    assert all(is_valid_uscc(code) for code in usccs)
    assert all(code[2:8] == region for code, region in zip(usccs, ent["region_code"].to_pylist(), strict=True))
    assert all(is_valid_resident_id(n) for n in ent["legal_rep_id_number"].to_pylist())
    assert all(re.fullmatch(r"1[3-9]\d{9}", p) for p in ent["legal_rep_phone"].to_pylist())


def test_money_is_decimal_never_float(small_sim: SimDataset) -> None:
    for table, column in (("enterprises", "registered_capital"), ("trade_documents", "amount"),
                          ("financing_requests", "amount"), ("commodity_prices", "price")):
        field = small_sim.table(table).schema.field(column)
        assert pa.types.is_decimal(field.type) and field.type.scale == 2, (table, column, field.type)
    amounts = small_sim.table("trade_documents")["amount"].to_pylist()
    assert all(isinstance(a, Decimal) and a > 0 for a in amounts)


def test_trade_flows_order_delivery_invoice_payment_with_lags(small_sim: SimDataset) -> None:
    docs = small_sim.table("trade_documents").to_pylist()
    fabricated = {i for inc in small_sim.table("incidents").to_pylist() if inc["incident_type"] == "fabricated_trade"
                  for i in json.loads(inc["detail"])["document_ids"]}
    assert fabricated
    by_order: dict[int, dict[str, dict]] = {}
    for d in docs:
        if d["order_id"] is not None and d["document_id"] not in fabricated:
            by_order.setdefault(d["order_id"], {})[d["doc_type"]] = d
    kinds = Counter(d["doc_type"] for d in docs)
    assert all(kinds[k] > 0 for k in ("purchase_order", "delivery_note", "invoice", "warehouse_receipt", "payment"))
    lags = []
    for chain in by_order.values():
        po = chain["purchase_order"]
        assert po["document_id"] == po["order_id"]
        if "delivery_note" in chain:
            assert chain["delivery_note"]["issued_on"] > po["issued_on"]
            lags.append((chain["delivery_note"]["issued_on"] - po["issued_on"]).days)
        if "invoice" in chain:
            inv = chain["invoice"]
            assert "delivery_note" in chain and inv["issued_on"] >= chain["delivery_note"]["issued_on"]
            assert inv["due_on"] > inv["issued_on"] and inv["invoice_code"] and inv["invoice_number"]
            assert inv["amount"] == po["amount"]
        if "payment" in chain:
            assert chain["payment"]["issued_on"] >= chain["invoice"]["issued_on"]
    assert 1 <= np.median(lags) <= 7
    invoices = [(d["invoice_code"], d["invoice_number"]) for d in docs if d["doc_type"] == "invoice"]
    assert len(set(invoices)) == len(invoices)


def test_default_rate_is_in_the_documented_range() -> None:
    """docs/simulator.md: 2-9 % of enterprises default within 180 days."""
    for seed in (1, 2, 3):
        eco = build_economy(SimConfig(enterprises=400, days=180, seed=seed))
        rate = eco.ground_truth["defaults"].num_rows / 400
        assert 0.02 <= rate <= 0.09, (seed, rate)


def test_activity_carries_information_about_default_without_giving_it_away() -> None:
    """Early activity ranks later defaulters lower, but far from perfectly (AUC strictly between)."""
    cfg = SimConfig(enterprises=1500, days=240, seed=5)
    eco = build_economy(cfg)
    health = eco.ground_truth["health"]
    days = cfg.days
    activity = health["activity"].to_numpy().reshape(cfg.enterprises, days)
    defaults = eco.ground_truth["defaults"]
    late = {e for e, d in zip(defaults["enterprise_id"].to_pylist(), defaults["default_on"].to_pylist(), strict=True)
            if (d - cfg.start_date).days >= 90}
    early_defaulters = set(defaults["enterprise_id"].to_pylist()) - late
    ids = np.arange(1, cfg.enterprises + 1)
    keep = np.array([i not in early_defaulters for i in ids])
    score = activity[:, 30:60].mean(axis=1)[keep]  # observed in month two, default after month three
    label = np.array([i in late for i in ids])[keep]
    assert label.sum() >= 20
    pos, neg = score[label], score[~label]
    auc = (neg[None, :] > pos[:, None]).mean() + 0.5 * (neg[None, :] == pos[:, None]).mean()
    assert 0.6 < auc < 0.97, auc


def test_device_fleet_suits_the_sector(small_sim: SimDataset) -> None:
    ent = {e["enterprise_id"]: e for e in small_sim.table("enterprises").to_pylist()}
    devices = small_sim.table("devices").to_pylist()
    assert len(devices) == 1200
    have: dict[int, set[str]] = {}
    for d in devices:
        have.setdefault(d["enterprise_id"], set()).add(d["device_type"])
    assert set(have) == set(ent)  # every enterprise has at least one device
    for eid, types in have.items():
        assert "electricity_meter" in types
        if ent[eid]["subsector"] in ("dairy", "livestock"):
            assert types & {"livestock_tag", "tank_gauge", "env_sensor"}
    by_sector = Counter((ent[d["enterprise_id"]]["sector"], d["device_type"]) for d in devices)
    assert by_sector[("logistics", "gps_tracker")] > by_sector[("logistics", "machine_sensor")]
    assert by_sector[("energy", "load_cell")] + by_sector[("energy", "tank_gauge")] > 0
    assert by_sector[("agriculture", "livestock_tag")] > 0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="enterprises"):
        SimConfig(enterprises=2)
    with pytest.raises(ValidationError, match="days"):
        SimConfig(days=0)
    with pytest.raises(ValidationError, match="devices"):
        SimConfig(enterprises=100, devices=50)
