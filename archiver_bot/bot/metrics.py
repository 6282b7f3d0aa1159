"""Prometheus metrics of the archiver, served on loopback behind a bearer token."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from archiver_bot.settings import write_private


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.capture_lag = Histogram(
            "rijkschat_archiver_capture_lag_seconds",
            "Time from an event's origin_server_ts to its commit in the archive",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.events = Counter(
            "rijkschat_archiver_events", "Events committed to the archive",
            registry=self.registry,
        )
        self.undecryptable = Gauge(
            "rijkschat_archiver_undecryptable_events",
            "Archived events still undecryptable", registry=self.registry,
        )
        self.backfill_pages = Counter(
            "rijkschat_archiver_backfill_pages", "Pages fetched with /messages",
            registry=self.registry,
        )
        self.syncs = Counter(
            "rijkschat_archiver_syncs", "Sync responses committed", registry=self.registry
        )


def metrics_token(path: Path) -> str:
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    return path.read_text("utf-8").strip()


def create_metrics_app(
    metrics: Metrics, token: str, client_max_size: int = 1024**2
) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=client_max_size)
    app.router.add_get("/metrics", handler)
    return app
