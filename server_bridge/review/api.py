"""The archivist JSON API under ``/api/v1`` (thin handlers: authenticate, validate, call the
review service, shape the answer). Every endpoint answers 401 without a token, 403 for
anyone whose roster role is not ``archivist``, and every archive read is access-logged."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

from aiohttp import web

from server_bridge.review.keyimport import forward_import, read_upload
from server_bridge.review.openapi import openapi_document
from server_bridge.review.service import (
    AUDIT_DEFAULT_LIMIT,
    AUDIT_MAX_LIMIT,
    EVENTS_DEFAULT_LIMIT,
    EVENTS_MAX_LIMIT,
    MAX_TS,
    REVIEW,
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT,
    Reader,
    access_to_dict,
    event_id_param,
    event_to_dict,
    int_param,
    limit_param,
    page_token_param,
    purpose_param,
    query_param,
    room_id_param,
    room_to_dict,
    user_id_param,
)
from server_bridge.web.api_errors import ApiError, Handler
from server_bridge.web.auth import require_role

log = logging.getLogger(__name__)

ARCHIVIST = "archivist"
PURPOSE_HEADER = "X-Rijkschat-Purpose"
COMPLETENESS_PATH = "/api/v1/audit/completeness"

_MIMETYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


async def _reader(request: web.Request) -> Reader:
    principal = await require_role(request, ARCHIVIST)
    route = request.match_info.route.resource
    via = f"{request.method} {route.canonical if route is not None else request.path}"
    return Reader(principal.user_id, purpose_param(request.headers.get(PURPOSE_HEADER)), via)


#: the authentication and authorisation of every /api/v1 route (archivists only)
archivist_reader = _reader


def _q(request: web.Request, name: str) -> str | None:
    return request.query.get(name)


async def get_rooms(request: web.Request) -> web.Response:
    reader = await _reader(request)
    rooms = await request.app[REVIEW].rooms(reader)
    return web.json_response({"rooms": [room_to_dict(r) for r in rooms]})


async def get_room_events(request: web.Request) -> web.Response:
    reader = await _reader(request)
    room_id = room_id_param(request.match_info["room_id"])
    after = page_token_param(_q(request, "from"))
    limit = limit_param(_q(request, "limit"), EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT)
    events, next_token = await request.app[REVIEW].events(reader, room_id, after, limit)
    return web.json_response({"events": [event_to_dict(e) for e in events], "next": next_token})


async def get_event(request: web.Request) -> web.Response:
    reader = await _reader(request)
    event_id = event_id_param(request.match_info["event_id"])
    event = await request.app[REVIEW].event(reader, event_id)
    return web.json_response(event_to_dict(event))


def safe_filename(name: str) -> str:
    cleaned = "".join(c for c in name if c.isprintable() and c not in '/\\"').strip(" .")
    return cleaned[:200] or "bijlage"


def attachment_response(data: bytes, filename: str, mimetype: str) -> web.Response:
    """The decrypted bytes as a download under the original file name; never rendered by
    the browser in the archive's origin (disposition attachment, nosniff, sandbox)."""
    name = safe_filename(filename)
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    mime = mimetype.lower() if _MIMETYPE.match(mimetype.lower()) else "application/octet-stream"
    return web.Response(
        body=data,
        headers={
            "Content-Type": mime,
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
            ),
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


async def get_attachment(request: web.Request) -> web.Response:
    reader = await _reader(request)
    event_id = event_id_param(request.match_info["event_id"])
    data, filename, mimetype = await request.app[REVIEW].attachment(reader, event_id)
    return attachment_response(data, filename, mimetype)


async def get_search(request: web.Request) -> web.Response:
    reader = await _reader(request)
    q = query_param(_q(request, "q"))
    room = _q(request, "room")
    sender = _q(request, "sender")
    room_id = room_id_param(room, "room") if room else None
    sender_id = user_id_param(sender, "sender") if sender else None
    from_ts = int_param(_q(request, "from_ts"), "from_ts", default=None, low=0, high=MAX_TS)
    to_ts = int_param(_q(request, "to_ts"), "to_ts", default=None, low=0, high=MAX_TS)
    limit = limit_param(_q(request, "limit"), SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT)
    service = request.app[REVIEW]
    hits = await service.search(
        reader, q, room=room_id, sender=sender_id, from_ts=from_ts, to_ts=to_ts, limit=limit
    )
    body = []
    for hit in hits:
        name = await service.room_name(reader, hit.room_id)
        body.append(
            {
                "event": event_to_dict(hit.event),
                "room": {"room_id": hit.room_id, "name": name},
                "terms": list(hit.terms),
            }
        )
    return web.json_response({"hits": body})


async def get_verify(request: web.Request) -> web.Response:
    reader = await _reader(request)
    room_id = room_id_param(request.match_info["room_id"])
    result = await request.app[REVIEW].verify(reader, room_id)
    return web.json_response(result.to_dict())


async def post_room_keys(request: web.Request) -> web.Response:
    """Import a sender's room-key export (multipart: ``file``, ``passphrase``) for this
    room: forwarded to the archiver bot, which decrypts what the keys open."""
    reader = await _reader(request)
    room_id = room_id_param(request.match_info["room_id"])
    upload = await read_upload(request)
    await request.app[REVIEW].room(reader, room_id)  # 404 for a room not in the archive
    result = await forward_import(request, reader, room_id, upload)
    return web.json_response(result)


async def get_audit(request: web.Request) -> web.Response:
    reader = await _reader(request)
    limit = limit_param(_q(request, "limit"), AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT)
    user = _q(request, "user")
    user_id = user_id_param(user, "user") if user else None
    since = int_param(_q(request, "since_ts"), "since_ts", default=None, low=0, high=MAX_TS)
    entries = await request.app[REVIEW].access_log(
        reader, limit=limit, user_id=user_id, since_ts=since
    )
    return web.json_response({"entries": [access_to_dict(e) for e in entries]})


async def get_openapi(request: web.Request) -> web.Response:
    await require_role(request, ARCHIVIST)
    return web.json_response(openapi_document())


@web.middleware
async def completeness_access_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """The completeness audit (served by the ledger) reads the archive outside the store's
    logged read API; note the archivist's call in the access log before it is served."""
    if request.path == COMPLETENESS_PATH and request.method == "GET":
        reader = await _reader(request)
        service = request.app[REVIEW]
        if service.archive_exists():
            await service.note_access(reader)
    return await handler(request)


API_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v1/rooms", get_rooms),
    ("GET", "/api/v1/rooms/{room_id}/events", get_room_events),
    ("GET", "/api/v1/rooms/{room_id}/verify", get_verify),
    ("POST", "/api/v1/rooms/{room_id}/keys", post_room_keys),
    ("GET", "/api/v1/events/{event_id}", get_event),
    ("GET", "/api/v1/events/{event_id}/attachment", get_attachment),
    ("GET", "/api/v1/search", get_search),
    ("GET", "/api/v1/audit", get_audit),
    ("GET", "/api/v1/openapi.json", get_openapi),
]


def setup_api(app: web.Application) -> None:
    from server_bridge.review.woo_api import WOO_ROUTES

    for method, path, handler in API_ROUTES + WOO_ROUTES:
        app.router.add_route(method, path, handler)


__all__ = ["ApiError", "completeness_access_middleware", "setup_api"]
