"""The archivist review side: the JSON API under /api/v1 and the web UI under /archief.

``routes`` are thin (``api``, ``ui``), the rules live in ``service`` (the only module that
talks to the archive store, always as a reader and always with an access-logged actor),
``transcript`` and ``text`` are pure presentation helpers, ``sessions`` and ``security``
hold the web session/CSRF handling and the response headers.
"""

from __future__ import annotations

from aiohttp import web

from server_bridge.review.api import completeness_access_middleware, setup_api
from server_bridge.review.security import (
    quiet_malformed_request_logs,
    security_headers_middleware,
)
from server_bridge.review.service import review_ctx
from server_bridge.review.ui import setup_ui, ui_error_middleware
from server_bridge.review.woo_export import setup_woo_export
from server_bridge.review.woo_ui import setup_woo_ui

__all__ = [
    "completeness_access_middleware",
    "security_headers_middleware",
    "setup_review",
    "ui_error_middleware",
]


def setup_review(app: web.Application) -> None:
    """Register the review API and UI (their middlewares are listed in ``create_app``)."""
    quiet_malformed_request_logs()
    app.cleanup_ctx.append(review_ctx)
    setup_api(app)
    setup_ui(app)
    setup_woo_ui(app)
    setup_woo_export(app)
