"""The bridge application factory, used by `serve`, `up` and every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server_bridge.appservice.routes import setup_ledger
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
        middlewares=[error_middleware, api_error_middleware], client_max_size=1024**2
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_http_session)
    setup_auth(app)
    app.router.add_get("/healthz", healthz)
    setup_ledger(app)  # AS transactions, the ledger, the audit API and /metrics
    return app
