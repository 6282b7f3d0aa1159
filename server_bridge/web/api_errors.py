"""Typed API errors with Matrix-style error codes, rendered as JSON by one middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server_bridge.web.errors import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raise anywhere in a handler; answered as ``{"errcode", "error"}`` with ``status``."""

    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message


@web.middleware
async def api_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.errcode, exc.message)
