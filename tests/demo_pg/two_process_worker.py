"""One of two platform processes sharing one PostgreSQL and one data folder (telemetry store, keys):
run by tests/demo_pg/test_two_processes.py. Waits for the go file, then under load: anchors ledger
batches, places liens on the shared assets (the rival process places on the same ones), and runs
the close through a day (the rival runs it at the same moment). Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

from iotfin.app.workspace import Workspace
from iotfin.core.errors import Conflict
from iotfin.core.settings import Settings
from iotfin.financing.model import receivable_key
from iotfin.financing.service import DoubleFinancing
from iotfin.identity.codes import make_uscc

SELLER, BUYER = make_uscc("91", "330100", "MA0000001"), make_uscc("91", "330100", "MA0000002")


def main() -> None:
    url, data_dir, name, go, assets, through = sys.argv[1:7]
    ws = Workspace(Settings(data_dir=Path(data_dir), database_url=url, simulation=True))
    ws.ledger.store.size()  # connect before the start line
    while not Path(go).exists():
        time.sleep(0.01)
    anchored: list[str] = []
    placed: list[int] = []
    refused = 0
    closes: list[dict] = []
    conflicts = 0
    close_done = False
    for i in range(int(assets)):
        # load on the ledger: a batch of 50 records, then a lien on asset i (anchored too)
        ids = [f"{name}-{i}-{k}" for k in range(50)]
        ws.ledger.anchor("telemetry_batch", [(rid, {"process": name, "n": rid}) for rid in ids], checkpoint=False)
        anchored += ids
        key = receivable_key("3300000000", f"{i:08d}", SELLER, BUYER, "1000.00")
        try:
            placed.append(ws.financing.finance(key, 1, f"{name}-{i}", "1000.00").id)
        except DoubleFinancing:
            refused += 1
        if i == int(assets) // 2 and not close_done:  # both processes reach here together: the close
            while not close_done:
                try:
                    closes.append(ws.scheduled_close.run(date.fromisoformat(through), simulate=True))
                    close_done = True
                except Conflict:
                    conflicts += 1
                    time.sleep(0.05)
    ws.ledger.checkpoint()
    print(json.dumps({"name": name, "anchored": anchored, "placed": placed, "refused": refused,
                      "close_days": [[str(d["business_date"]), d["loans_closed"]] for c in closes for d in c["days"]],
                      "loans_closed": sum(d["loans_closed"] for c in closes for d in c["days"]),
                      "close_conflicts": conflicts}))
    ws.close()


if __name__ == "__main__":
    main()
