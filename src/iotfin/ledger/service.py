"""Ledger use cases: anchor records and telemetry batches, sign checkpoints, prove, audit."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine

from iotfin.core.errors import NotFound, ValidationError
from iotfin.core.jsonvalues import jsonable
from iotfin.db.engine import write_transaction
from iotfin.ledger import merkle
from iotfin.ledger.checkpoint import ED25519, SignerKey, VerifierKey, open_checkpoint
from iotfin.ledger.entry import Entry, entry_leaf_hash
from iotfin.ledger.evidence import FORMAT, b64
from iotfin.ledger.ports import RecordLoader, RecordLoaders
from iotfin.ledger.records import leaf_payload, new_salt, record_type
from iotfin.ledger.store import LedgerStore
from iotfin.ledger.telemetry_proof import series_at, series_leaf_hashes
from iotfin.ledger.witness import format_add_checkpoint_request, parse_cosignature_response
from iotfin.telemetry.model import sort_order
from iotfin.telemetry.store import decode_values

DEFAULT_ORIGIN = "iotfin.local/ledger"
# Ids per loader call: one query for many records, within any database's limit on bound parameters.
LOAD_CHUNK = 1_000


def load_or_create_signer(path: Path, name: str = "iotfin-ledger", key_type: int = ED25519) -> SignerKey:
    """A signing key kept in the data directory (mode 0600), made on first use: the log's Ed25519
    key, or (key_type=COSIGNATURE_V1) the platform's witness key."""
    if path.exists():
        return SignerKey.parse(path.read_text().strip())
    key = SignerKey.generate(name, key_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.encode() + "\n")
    return key


class LedgerService:
    def __init__(self, engine: Engine, signer: SignerKey, origin: str = DEFAULT_ORIGIN,
                 loaders: RecordLoaders | None = None):
        """`loaders` read each confidential record type as it stands now, to anchor, prove and audit it;
        the contexts that own the records provide them (iotfin.ledger.ports)."""
        self.engine = engine
        self.store = LedgerStore(engine)
        self.signer = signer
        self.origin = origin
        self.loaders: dict[str, RecordLoader] = dict(loaders or {})

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier().encode()

    # --- anchoring ------------------------------------------------------------------------------

    def anchor(self, type_name: str, items: Sequence[tuple[str, dict[str, Any]]], checkpoint: bool = True,
               conn: Connection | None = None) -> int:
        """Anchor records (id, body) of one type in one batch; returns the first leaf index. With
        `conn` (the caller's open write transaction) the leaves commit with the caller's rows, and
        no checkpoint is signed (it could not be before the commit)."""
        if not items:
            return self.store.size()
        first = self._append_records([(type_name, str(rid), body) for rid, body in items], conn)
        if checkpoint and conn is None:
            self.checkpoint()
        return first

    def anchor_records(self, conn: Connection, items: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
        """Anchor records (type, id, body) of several types in one append, in the caller's write
        transaction. One append, not one per type: each append locks the head and rewrites the
        tiles at the log's edge."""
        return self._append_records(items, conn)

    def _append_records(self, items: Sequence[tuple[str, str, dict[str, Any]]], conn: Connection | None) -> int:
        rtypes = {t: record_type(t) for t in {t for t, _, _ in items}}
        salts = [new_salt() if rtypes[t].confidential else None for t, _, _ in items]
        entries = [Entry(t, rid, leaf_payload(t, body, salt)) for (t, rid, body), salt in zip(items, salts, strict=True)]

        def remember(conn: Connection, first: int) -> None:
            self.store.insert_anchors(conn, [
                {"leaf_index": first + i, "record_type": t, "record_id": rid, "salt": salt}
                for i, ((t, rid, _), salt) in enumerate(zip(items, salts, strict=True))])

        return self.store.append_batch(entries, also=remember, conn=conn).first_index

    def anchor_from_source(self, type_name: str, record_ids: Sequence[str], checkpoint: bool = True,
                           conn: Connection | None = None) -> int:
        """Anchor records as they stand now in their source tables. With `conn`, the records are
        read in, and anchored as part of, the caller's write transaction: a record and its anchor
        commit together or not at all (see LedgerStore.append_batch)."""
        if conn is not None:
            return self.anchor(type_name, self._load(conn, type_name, record_ids), checkpoint=False, conn=conn)
        with self.engine.connect() as own:
            items = self._load(own, type_name, record_ids)
        return self.anchor(type_name, items, checkpoint)

    def current(self, conn: Connection, type_name: str, record_ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """The records (id, body) as they stand now in their source tables, as they would be anchored."""
        return self._load(conn, type_name, record_ids)

    def _load(self, conn: Connection, type_name: str,
              record_ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        ids = [str(rid) for rid in record_ids]
        bodies = self._bodies(conn, type_name, ids)
        missing = next((rid for rid in ids if rid not in bodies), None)
        if missing is not None:
            raise NotFound(f"no {type_name} {missing}")
        return [(rid, bodies[rid]) for rid in ids]

    def _bodies(self, conn: Connection, type_name: str,
                record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records as they stand now, by id, from their owner's loader, in chunks of LOAD_CHUNK ids."""
        loader = self._loader(type_name)
        bodies: dict[str, dict[str, Any]] = {}
        for start in range(0, len(record_ids), LOAD_CHUNK):
            bodies.update(loader(conn, record_ids[start:start + LOAD_CHUNK]))
        return bodies

    def _loader(self, type_name: str) -> RecordLoader:
        try:
            return self.loaders[type_name]
        except KeyError:
            raise ValidationError(f"no loader for {type_name} records is plugged into the ledger") from None

    def anchor_all(self, type_name: str, batch: int = 10_000) -> int:
        """Anchor every record of a type as it stands now, in batches; returns how many."""
        with self.engine.connect() as conn:
            items = list(self._loader(type_name)(conn, None).items())
        for start in range(0, len(items), batch):
            self.anchor(type_name, items[start:start + batch], checkpoint=False)
        return len(items)

    def anchor_telemetry_batch(self, seq: int, readings: pa.Table) -> int:
        """One leaf per committed telemetry batch, holding the Merkle root of its readings' series."""
        ordered = _series_order(readings)
        tree = merkle.MemoryTree(series_leaf_hashes(ordered))
        ts = ordered["ts"].to_numpy()
        body = {"seq": seq, "readings": ordered.num_rows, "series": tree.size, "root": tree.root().hex(),
                "first_ts": int(ts.min()), "last_ts": int(ts.max())}
        # Once per batch, whoever anchors it: the writer after its append, or (after the writer was
        # killed in between) `anchor_stored_batches` in another process. The check runs under the
        # log's write lock, so two of them never both append a leaf for one batch.
        with write_transaction(self.engine) as conn:
            self.store._lock_head(conn)
            existing = self.store.latest_anchor(conn, "telemetry_batch", f"seq-{seq}")
            if existing is not None:
                return int(existing.leaf_index)
            return self.anchor("telemetry_batch", [(f"seq-{seq}", body)], checkpoint=False, conn=conn)

    def anchor_stored_batches(self, telemetry_root: Path, min_age_s: float = 10.0) -> list[int]:
        """Anchor telemetry batches stored but never anchored: their writer died between the durable
        append and the anchor (`kill -9` of an ingest worker). Batches younger than `min_age_s` are
        left to their writer (and a batch spanning days may still be being renamed into place).
        Returns the batch numbers anchored here."""
        now = time.time()
        by_seq: dict[int, list[Path]] = {}
        young: set[int] = set()
        for path in Path(telemetry_root).glob("day=*/b*.parquet"):
            seq = int(path.stem[1:])
            try:
                if now - path.stat().st_mtime < min_age_s:
                    young.add(seq)
            except FileNotFoundError:  # retention removed it meanwhile
                continue
            by_seq.setdefault(seq, []).append(path)
        with self.engine.connect() as conn:
            anchored = {int(a.record_id[4:]) for a in self.store.anchors(conn) if a.record_type == "telemetry_batch"}
        done = []
        for seq in sorted(by_seq.keys() - anchored - young):
            batch = pa.concat_tables([pq.read_table(p) for p in by_seq[seq]])
            readings = pa.table({"device_id": batch["device_id"], "key": batch["key"], "ts": batch["ts"],
                                 "value": decode_values(batch)})
            self.anchor_telemetry_batch(seq, readings)
            done.append(seq)
        return done

    def checkpoint(self) -> str:
        return self.store.sign_checkpoint(self.signer, self.origin)

    # --- proving --------------------------------------------------------------------------------

    def prove(self, type_name: str, record_id: str) -> dict[str, Any]:
        """An evidence bundle for the record's latest anchor, as it stands now (a record changed
        since it was anchored cannot be proved: its commitment no longer matches)."""
        rtype = record_type(type_name)
        with self.engine.connect() as conn:
            anchor = self.store.latest_anchor(conn, rtype.name, str(record_id))
            if anchor is None:
                raise NotFound(f"{type_name} {record_id} is not anchored")
            leaf = self.store.leaf(anchor.leaf_index)
            if rtype.confidential:
                body = self._bodies(conn, rtype.name, [str(record_id)]).get(str(record_id))
                if body is None:
                    raise NotFound(f"{type_name} {record_id} no longer exists")
            else:
                body = orjson.loads(leaf.payload)["body"]
        note = self._checkpoint_covering(anchor.leaf_index + 1)
        checkpoint, _ = open_checkpoint(note, [self.signer.verifier()])
        return {
            "format": FORMAT,
            "log": {"origin": self.origin, "verifier_key": self.verifier_key},
            "record": {"type": rtype.name, "id": str(record_id), "body": jsonable(body),
                       "salt": b64(anchor.salt) if anchor.salt is not None else None},
            "leaf": {"index": anchor.leaf_index, "payload": b64(leaf.payload)},
            "inclusion_proof": [b64(h) for h in self.store.inclusion_proof(anchor.leaf_index, checkpoint.size)],
            "checkpoint": note,
        }

    def prove_reading(self, telemetry_root: Path, device_id: int, key: str, ts: int) -> dict[str, Any]:
        """Evidence for one stored reading: its series, the series' place in its batch, and the batch leaf."""
        day_dir = telemetry_root / f"day={np.datetime64(ts, 'ms').astype('datetime64[D]')}"
        for path in sorted(day_dir.glob("b*.parquet"), reverse=False):
            table = pq.read_table(path, filters=[("device_id", "=", device_id), ("key", "=", key), ("ts", "=", ts)])
            if table.num_rows:
                seq = int(table["seq"][0].as_py())
                break
        else:
            raise NotFound(f"no stored reading of device {device_id} key {key!r} at {ts}")

        parts = [pq.read_table(p) for p in sorted(telemetry_root.glob(f"day=*/b{seq:012d}.parquet"))]
        batch = pa.concat_tables(parts)
        batch = pa.table({"device_id": batch["device_id"], "key": batch["key"], "ts": batch["ts"],
                          "value": decode_values(batch)})
        ordered = _series_order(batch)
        hashes = series_leaf_hashes(ordered)
        tree = merkle.MemoryTree(hashes)
        index = next(i for i in range(len(hashes)) if (s := series_at(ordered, i)).device_id == device_id and s.key == key)
        series = series_at(ordered, index)
        value = series.values[series.ts.index(ts)]
        bundle = self.prove("telemetry_batch", f"seq-{seq}")
        bundle["reading"] = {"device_id": device_id, "key": key, "ts": ts, "value": value, "series": series.to_json(),
                             "series_index": index, "series_proof": [b64(h) for h in tree.inclusion_proof(index)]}
        return bundle

    def _checkpoint_covering(self, size: int) -> str:
        latest = self.store.latest_checkpoint()
        if latest is None or latest.size < size:
            return self.checkpoint()
        return latest.note

    def status(self, recent: int = 10) -> dict[str, Any]:
        """The latest signed checkpoint (signing one if the head moved), its size, root and signature
        lines, anchors per record type and the latest anchored records (what evidence can be asked for)."""
        note = self.checkpoint()
        body, _, signatures = note.partition("\n\n")
        lines = body.split("\n")
        with self.engine.connect() as conn:
            counts = self.store.anchor_counts(conn)
            rows = self.store.recent_anchors(conn, recent)
        return {"checkpoint": note, "origin": lines[0], "size": int(lines[1]), "root": lines[2],
                "signatures": [s for s in signatures.split("\n") if s.strip()],
                "verifier_key": self.verifier_key, "anchors_by_type": counts,
                "recent_anchors": [{"leaf_index": int(r.leaf_index), "record_type": r.record_type,
                                    "record_id": r.record_id} for r in rows]}

    # --- auditing -------------------------------------------------------------------------------

    def audit(self, chunk: int = 50_000, telemetry_root: Path | None = None) -> dict[str, Any]:
        """Re-derive the whole log from the stored leaves and compare it with the head, the tiles and
        every signed checkpoint; then re-check every confidential record's latest anchor against the
        record as it stands now. Returns the problems found (empty lists = clean)."""
        problems: dict[str, list[Any]] = {"log": [], "records": []}
        tree = merkle.MemoryTree()
        checkpoints = {}
        with self.engine.connect() as conn:
            for row in self.store.checkpoint_roots(conn):
                checkpoints[int(row.size)] = bytes(row.root)
            latest: dict[tuple[str, str], Any] = {}
            for a in self.store.anchors(conn):
                latest[(a.record_type, a.record_id)] = a
            # The payloads the record check needs are kept from the one pass over the leaves.
            wanted = {a.leaf_index for (t, _), a in latest.items()
                      if t in self.loaders and a.salt is not None}
            payloads: dict[int, bytes] = {}
            start = 0
            while True:
                rows = self.store.leaves_from(conn, start, chunk)
                if not rows:
                    break
                if rows[-1].idx != tree.size + len(rows) - 1:
                    problems["log"].append(f"leaves missing between {tree.size} and {rows[-1].idx}")
                    return self._audit_result(problems, tree.size)
                hashes = [entry_leaf_hash(Entry(r.record_type, r.record_id, bytes(r.payload))) for r in rows]
                payloads.update((r.idx, bytes(r.payload)) for r in rows if r.idx in wanted)
                # Append in runs that end at each signed size, so every checkpoint is compared once.
                cuts = sorted(n - tree.size for n in checkpoints if tree.size < n <= tree.size + len(hashes))
                done = 0
                for cut in [*cuts, len(hashes)]:
                    if cut > done:
                        tree.append(hashes[done:cut])
                        done = cut
                    if tree.size in checkpoints and tree.root() != checkpoints[tree.size]:
                        problems["log"].append(f"signed checkpoint at size {tree.size} does not match the leaves")
                start = rows[-1].idx + 1
            size = self.store.size()
            if tree.size != size:
                problems["log"].append(f"head says {size} leaves, {tree.size} stored")
            elif tree.root() != self.store.root():
                problems["log"].append("head root does not match the leaves")
            elif size and tree.root() != merkle.root_hash(size, self.store._node_reader(conn)):  # noqa: SLF001
                problems["log"].append("stored subtree hashes do not match the leaves")
            ids_by_type: dict[str, list[str]] = {}
            for (type_name, record_id), a in latest.items():
                if a.leaf_index in wanted:
                    ids_by_type.setdefault(type_name, []).append(record_id)
            bodies = {type_name: self._bodies(conn, type_name, ids)  # one query per chunk, not one per record
                      for type_name, ids in ids_by_type.items()}
            for (type_name, record_id), a in latest.items():
                if a.leaf_index not in wanted:
                    continue
                body = bodies[type_name].get(record_id)
                payload = payloads.get(a.leaf_index, b"")
                if body is None:
                    problems["records"].append({"type": type_name, "id": record_id, "problem": "deleted"})
                elif leaf_payload(type_name, body, bytes(a.salt)) != bytes(payload):
                    problems["records"].append({"type": type_name, "id": record_id, "leaf_index": a.leaf_index,
                                                "problem": "changed since anchored"})
        if telemetry_root is not None:  # a batch stored but never anchored (crash between the two)
            stored = {int(p.stem[1:]) for p in Path(telemetry_root).glob("day=*/b*.parquet")}
            anchored = {int(rid[4:]) for (t, rid) in latest if t == "telemetry_batch"}
            problems["records"].extend({"type": "telemetry_batch", "id": f"seq-{n}", "problem": "stored but not anchored"}
                                       for n in sorted(stored - anchored))
        return self._audit_result(problems, tree.size, len(latest))

    @staticmethod
    def _audit_result(problems: dict[str, list[Any]], leaves: int, records: int = 0) -> dict[str, Any]:
        return {"ok": not problems["log"] and not problems["records"], "leaves": leaves, "records_checked": records,
                **problems}


def _series_order(readings: pa.Table) -> pa.Table:
    """A batch in (device, key, ts) order: the order its series tree is built in."""
    keys = pc.dictionary_encode(readings["key"]).combine_chunks()
    rank = np.argsort(np.argsort(keys.dictionary.to_numpy(zero_copy_only=False)))[keys.indices.to_numpy()]
    order = sort_order(readings["device_id"].to_numpy(), rank, readings["ts"].to_numpy())
    return readings.take(pa.array(order))


def verifier_from_text(vkey: str) -> VerifierKey:
    return VerifierKey.parse(vkey.strip())


# --- witnessing ------------------------------------------------------------------------------------


def request_cosignature(service: LedgerService, url: str, timeout: float = 10.0) -> list[str]:
    """Ask a C2SP tlog-witness to cosign our latest checkpoint; returns its cosignature lines.

    Starts from what the witness last saw as far as we know (0); on 409 the witness says its size
    and we resend with a consistency proof from there, as the protocol intends."""
    import httpx  # lazy: httpx loads only when this runs


    note = service.checkpoint()
    size = open_checkpoint(note, [service.signer.verifier()])[0].size
    old = 0
    for _ in range(2):
        proof = service.store.consistency_proof(old, size) if 0 < old < size else []
        response = httpx.post(url.rstrip("/") + "/add-checkpoint", content=format_add_checkpoint_request(old, proof, note),
                              timeout=timeout)
        if response.status_code == 409 and response.headers.get("content-type", "").startswith("text/x.tlog.size"):
            old = int(response.text.strip())
            continue
        if response.status_code != 200:
            raise NotFound(f"witness refused the checkpoint: HTTP {response.status_code} {response.text.strip()[:200]}")
        return parse_cosignature_response(response.content)
    raise NotFound("witness kept disagreeing about its latest size")
