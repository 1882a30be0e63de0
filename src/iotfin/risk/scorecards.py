"""Bootstrap scorecards as published, versioned records, like decision strategies: a version is
immutable content with its SHA-256, who published it and why; one version per name is active. The
scorecard shipped with the release (`iotfin/risk/data/bootstrap_scorecard.json`) is published by
`system` on first use when no version is active, or when the shipped content differs from every
published version and none has been activated by a person since (an upgrade brings its card).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from iotfin.core.errors import Conflict, NotFound, ValidationError
from iotfin.core.time import utc_now
from iotfin.db.engine import write_transaction
from iotfin.risk import store
from iotfin.risk.bootstrap import NAME, BootstrapScorecard, model_id, parse, shipped_text


class ScorecardService:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utc_now):
        self.engine = engine
        self.clock = clock
        self._parsed: dict[tuple[str, int], BootstrapScorecard] = {}

    def publish(self, content: str | bytes | Mapping[str, Any], *, by: str, name: str = NAME,
                note: str | None = None, activate: bool = True) -> dict[str, Any]:
        """Validate and store a new version (422 naming the field and feature that is wrong)."""
        if not by.strip():
            raise ValidationError("published_by: publishing needs the name of who publishes")
        if not name.strip() or len(name) > 64:
            raise ValidationError("name: a scorecard name is 1..64 characters")
        card = parse(content)
        for _attempt in range(3):
            try:
                with write_transaction(self.engine) as conn:
                    version = int(store.latest_scorecard_version(conn, name) or 0) + 1
                    store.insert_scorecard(conn, name=name, version=version, content=card.content, sha256=card.sha256,
                                           published_by=by, note=note, published_at=self.clock(), active=False)
                    if activate:
                        store.activate_scorecard(conn, name, version)
                break
            except IntegrityError:  # a concurrent publish took the number
                continue
        else:
            raise Conflict(f"could not publish scorecard {name}: concurrent publishes kept taking the version number")
        self._parsed[(name, version)] = card
        return {"name": name, "version": version, "model": model_id(version), "sha256": card.sha256,
                "published_by": by, "note": note, "active": activate, "not_scored": list(card.not_scored)}

    def activate(self, version: int, *, by: str, name: str = NAME) -> dict[str, Any]:
        if not by.strip():
            raise ValidationError("activated_by: activating needs the name of who activates")
        with write_transaction(self.engine) as conn:
            if not store.activate_scorecard(conn, name, version):
                raise NotFound(f"no scorecard {name} version {version}")
        return self.version(version, name=name) | {"activated_by": by}

    def versions(self, name: str = NAME) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = store.scorecard_versions(conn, name)
        return [r | {"model": model_id(r["version"])} for r in rows]

    def version(self, version: int, name: str = NAME) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = store.scorecard(conn, name, version)
        if row is None:
            raise NotFound(f"no scorecard {name} version {version}")
        return row | {"model": model_id(version)}

    def ensure_shipped(self) -> None:
        """Publish the shipped scorecard (by 'system') if no version of it is active yet."""
        with self.engine.connect() as conn:
            active = store.active_scorecard(conn, NAME)
        if active is None:
            self.publish(shipped_text(), by="system", note="the scorecard shipped with this release")

    def active(self, name: str = NAME) -> tuple[int, BootstrapScorecard]:
        """(version, scorecard) in force, publishing the shipped one on first use."""
        with self.engine.connect() as conn:
            row = store.active_scorecard(conn, name)
        if row is None and name == NAME:
            self.ensure_shipped()
            with self.engine.connect() as conn:
                row = store.active_scorecard(conn, name)
        if row is None:
            raise NotFound(f"no active scorecard {name}")
        key = (name, int(row["version"]))
        if key not in self._parsed:
            self._parsed[key] = parse(row["content"])
        return key[1], self._parsed[key]
