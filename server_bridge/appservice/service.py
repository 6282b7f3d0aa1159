"""The bridge's ledger service: the ledger, the audit against the archive, the metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from server_bridge.appservice.audit import (
    AuditReport,
    EmptyArchiveView,
    StoreArchiveView,
    open_archive_view,
    run_audit,
)
from server_bridge.appservice.catchup import CatchUp
from server_bridge.appservice.ledger import Ledger

log = logging.getLogger(__name__)

METRICS_GRACE_MS = 30_000  # the archiver may lag behind the ledger this long
METRICS_MAX_AGE = 30.0  # seconds a metrics audit is reused


class Metrics:
    """Prometheus metrics in their own registry (one per app, never global)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.transactions = Counter(
            "rijkschat_ledger_transactions",
            "AS transactions received, by outcome",
            ["outcome"],
            registry=r,
        )
        self.events_recorded = Counter(
            "rijkschat_ledger_events_recorded", "Events committed to the ledger", registry=r
        )
        self.caught_up = Counter(
            "rijkschat_ledger_events_caught_up",
            "Events the homeserver had not pushed that the catch-up found in its timeline",
            registry=r,
        )
        self.auth_failures = Counter(
            "rijkschat_appservice_auth_failures",
            "AS requests refused for a missing or wrong homeserver token",
            registry=r,
        )
        self.missing = Gauge(
            "rijkschat_audit_missing_events",
            "Events the homeserver accepted that the archive lacks",
            registry=r,
        )
        self.undecryptable = Gauge(
            "rijkschat_audit_undecryptable_events",
            "Archived events that are still undecryptable",
            registry=r,
        )
        self.pending = Gauge(
            "rijkschat_audit_pending_events",
            "Recent events not archived yet (within the grace period)",
            registry=r,
        )
        self.rooms = Gauge("rijkschat_audit_rooms", "Rooms in the ledger", registry=r)
        self.ledger_events = Gauge(
            "rijkschat_ledger_events", "Events recorded in the ledger", registry=r
        )
        self.unknown_to_ledger = Gauge(
            "rijkschat_audit_unknown_to_ledger_events",
            "Archived events the ledger should know and does not",
            registry=r,
        )
        self.ledger_incomplete = Gauge(
            "rijkschat_audit_ledger_incomplete",
            "1 when the archive holds events the ledger should know and does not",
            registry=r,
        )
        self.complete = Gauge(
            "rijkschat_audit_complete",
            "1 when nothing is missing or undecryptable and the ledger is not incomplete",
            registry=r,
        )
        self.room_missing = Gauge(
            "rijkschat_audit_room_missing_events",
            "Missing events per room",
            ["room_id"],
            registry=r,
        )
        self.last_run = Gauge(
            "rijkschat_audit_last_run_timestamp_seconds",
            "When the audit behind these metrics ran",
            registry=r,
        )

    def update(self, report: AuditReport) -> None:
        self.missing.set(report.missing_total)
        self.undecryptable.set(report.undecryptable_total)
        self.pending.set(report.pending_total)
        self.rooms.set(len(report.rooms))
        self.ledger_events.set(report.ledger_events)
        self.unknown_to_ledger.set(report.unknown_to_ledger_total)
        self.ledger_incomplete.set(1 if report.ledger_incomplete else 0)
        self.complete.set(1 if report.complete else 0)
        self.room_missing.clear()
        for room in report.rooms:
            if room.missing:
                self.room_missing.labels(room_id=room.room_id).set(len(room.missing))
        self.last_run.set(report.generated_at / 1000)


class LedgerService:
    def __init__(
        self,
        ledger: Ledger,
        data_dir: Path,
        archiver: str,
        homeserver_url: str | None = None,
        as_token: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.metrics = Metrics()
        self.catch_up: CatchUp | None = None
        if homeserver_url is not None and as_token is not None:
            self.catch_up = CatchUp(
                ledger, homeserver_url, as_token, archiver, self.metrics.caught_up.inc
            )
        self._data_dir = data_dir
        self._archiver = archiver
        self._archive: StoreArchiveView | EmptyArchiveView | None = None
        self._lock = asyncio.Lock()
        self._metrics_audit_at = 0.0

    async def _archive_view(self) -> StoreArchiveView | EmptyArchiveView:
        view = self._archive
        if isinstance(view, StoreArchiveView):
            return view
        view = await open_archive_view(self._data_dir)
        self._archive = view  # an empty view is retried next time: the archive may appear
        return view

    async def audit(self, grace_ms: int = 0) -> AuditReport:
        async with self._lock:
            view = await self._archive_view()
            return await run_audit(self.ledger, view, self._archiver, grace_ms)

    async def refresh_metrics(self) -> None:
        if time.monotonic() - self._metrics_audit_at < METRICS_MAX_AGE:
            return
        report = await self.audit(METRICS_GRACE_MS)
        self.metrics.update(report)
        self._metrics_audit_at = time.monotonic()

    async def close(self) -> None:
        if isinstance(self._archive, StoreArchiveView):
            await self._archive.close()
        await self.ledger.close()
