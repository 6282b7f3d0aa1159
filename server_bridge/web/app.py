"""The bridge application factory, used by `serve`, `up` and every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server_bridge.appservice.routes import setup_ledger
from server_bridge.review import (
    completeness_access_middleware,
    security_headers_middleware,
    setup_review,
    ui_error_middleware,
)
from server_bridge.settings import Settings
from server_bridge.web.api_errors import api_error_middleware
from server_bridge.web.auth import setup_auth
from server_bridge.web.errors import error_middleware
from server_bridge.web.health import healthz
from server_bridge.web.keys import HTTP, SETTINGS


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[HTTP] = session
        yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            security_headers_middleware,  # CSP and friends on every answer, errors included
            error_middleware,
            api_error_middleware,
            ui_error_middleware,  # errors under /archief as HTML pages
            completeness_access_middleware,  # the completeness audit in the access log
        ],
        client_max_size=1024**2,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_http_session)
    setup_auth(app)
    app.router.add_get("/healthz", healthz)
    setup_ledger(app)  # AS transactions, the ledger, the audit API and /metrics
    setup_review(app)  # the archivist API (/api/v1) and web UI (/archief)
    return app
