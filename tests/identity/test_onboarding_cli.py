"""`iotfin tenants|enterprises|sites ...` and `iotfin devices create --site` as real subprocesses on a
fresh workspace: the operator's shell onboards a lender, a partner, an enterprise, a site and a
device; bad input is one line on stderr with the field named and the documented exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from iotfin.identity import codes

USCC = codes.make_uscc("91", "330106", "MA2H7K3P5")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTFIN_")}
    return subprocess.run([sys.executable, "-m", "iotfin", *args, "--data-dir", str(data_dir)], capture_output=True,
                          text=True, timeout=120, env=env)


def _json(data_dir: Path, *args: str) -> Any:
    done = _cli(data_dir, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _enterprise_args(uscc: str = USCC, *extra: str) -> tuple[str, ...]:
    return ("enterprises", "create", "--uscc", uscc, "--name", "杭州示范仓储有限公司", "--name-en", "Hangzhou Demo Warehousing",
            "--sector", "logistics", "--subsector", "warehousing", "--region-code", "330106", "--founded-on",
            "2016-04-01", "--registered-capital", "5000000.00", "--legal-rep-name", "李强", "--legal-rep-id-number",
            "11010519491231002X", "--legal-rep-phone", "13800000000", *extra)


def test_onboarding_from_the_operators_shell(tmp_path: Path) -> None:
    d = tmp_path / "ws"
    assert _cli(d, "db", "upgrade").returncode == 0

    bank = _json(d, "tenants", "create", "--code", "hz-bank", "--name", "杭州城市商业银行", "--name-en", "Hangzhou Bank",
                 "--contact-email", "pilot@hzbank.example")
    assert bank["kind"] == "bank" and bank["contact_email"] == "pilot@hzbank.example"
    vendor = _json(d, "tenants", "create", "--code", "iot-co", "--name", "物联科技", "--name-en", "IoT Co", "--kind",
                   "partner", "--partner-kind", "iot_vendor")
    assert vendor["partner_kind"] == "iot_vendor"
    assert [t["code"] for t in _json(d, "tenants", "list", "--kind", "partner")["items"]] == ["iot-co"]
    no_kind = _cli(d, "tenants", "create", "--code", "p", "--name", "x", "--name-en", "x", "--kind", "partner")
    assert no_kind.returncode == 65 and no_kind.stderr.count("\n") == 1 and "partner_kind" in no_kind.stderr

    # a wrong check character: one line naming the field, exit 65, nothing stored
    bad = _cli(d, *_enterprise_args(USCC[:-1] + ("0" if USCC[-1] != "0" else "1")))
    assert bad.returncode == 65 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("iotfin: error: uscc ") and "check character" in bad.stderr
    assert _json(d, "enterprises", "list")["items"] == []

    made = _json(d, *_enterprise_args(USCC, "--lender", "hz-bank"))
    assert made["region"] == "浙江省杭州市" and made["onboarded_by"] == "hz-bank" and "李强" not in json.dumps(made)
    again = _cli(d, *_enterprise_args())
    assert again.returncode == 75 and "onboarded already" in again.stderr
    assert _json(d, "enterprises", "show", str(made["id"])) == made
    assert [e["id"] for e in _json(d, "enterprises", "list", "--region-code", "330000")["items"]] == [made["id"]]
    assert _json(d, "enterprises", "list", "--sector", "energy")["items"] == []
    assert _cli(d, "enterprises", "show", "99").returncode == 66

    site = _json(d, "sites", "create", "--enterprise", str(made["id"]), "--name", "下沙仓库", "--kind", "warehouse",
                 "--address", "浙江省杭州市钱塘区下沙街道 1 号", "--lat", "30.31", "--lon", "120.35",
                 "--geofence-radius-m", "300")
    assert site["enterprise_id"] == made["id"] and site["geofence_radius_m"] == 300.0
    assert [s["id"] for s in _json(d, "sites", "list", "--enterprise", str(made["id"]))["items"]] == [site["id"]]
    far = _cli(d, "sites", "create", "--enterprise", str(made["id"]), "--name", "x", "--kind", "warehouse",
               "--address", "x", "--lat", "95", "--lon", "120")
    assert far.returncode == 65 and "lat" in far.stderr

    # devices: at a site (the enterprise is the site's); never a silent default enterprise
    device = _json(d, "devices", "create", "--site", str(site["id"]), "--profile", "door_seal", "--name", "wh-seal-1")
    assert (device["enterprise_id"], device["site_id"], device["profile"]) == (made["id"], site["id"], "door_seal")
    nowhere = _cli(d, "devices", "create", "--profile", "door_seal")
    assert nowhere.returncode == 65 and "--site" in nowhere.stderr and nowhere.stderr.count("\n") == 1
    no_site = _cli(d, "devices", "create", "--site", "42")
    assert no_site.returncode == 65 and "site_id 42" in no_site.stderr
    wrong = _cli(d, "devices", "create", "--site", str(site["id"]), "--enterprise", str(made["id"] + 1))
    assert wrong.returncode == 65
    assert [e["name"] for e in _json(d, "enterprises", "list")["items"]] == ["杭州示范仓储有限公司"]  # no 默认企业
