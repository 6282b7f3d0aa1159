"""One place that turns failures into JSON errors; clients never see a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(
            exc.status, "M_UNKNOWN" if exc.status >= 500 else "M_BAD_REQUEST", exc.reason
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "M_UNKNOWN", "internal error")
