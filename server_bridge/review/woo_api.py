"""The Woo endpoints of the archivist API under ``/api/v1/woo`` (thin handlers: the rules
are in :mod:`server_bridge.woo.service`). Archivists only, like every ``/api/v1`` route."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aiohttp import web

from server_bridge.review.api import archivist_reader
from server_bridge.review.service import REVIEW
from server_bridge.web.api_errors import ApiError, Handler
from server_bridge.web.keys import SETTINGS
from server_bridge.woo.grounds import GROUNDS
from server_bridge.woo.service import (
    WooService,
    assessment_to_dict,
    case_to_dict,
    parse_assessment,
    parse_new_request,
    request_to_dict,
    suggestion_names,
    suggestions,
)

MAX_BODY_BYTES = 256 * 1024


def woo_service(request: web.Request) -> WooService:
    return WooService(request.app[REVIEW])


async def json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "M_TOO_LARGE", f"the body is limited to {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "M_TOO_LARGE", f"the body is limited to {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "M_NOT_JSON", "the body must be JSON") from None


async def post_request(request: web.Request) -> web.Response:
    reader = await archivist_reader(request)
    new = parse_new_request(await json_body(request), date.today().isoformat())
    created = await woo_service(request).create(reader, new)
    return web.json_response(request_to_dict(created), status=201)


async def get_requests(request: web.Request) -> web.Response:
    reader = await archivist_reader(request)
    found = await woo_service(request).requests(reader)
    return web.json_response({"requests": [request_to_dict(r) for r in found]})


async def get_request(request: web.Request) -> web.Response:
    reader = await archivist_reader(request)
    case = await woo_service(request).case(reader, request.match_info["request_id"])
    names = suggestion_names(request.app[SETTINGS].data_dir)
    return web.json_response(case_to_dict(case, names))


async def get_suggestions(request: web.Request) -> web.Response:
    """Suggested 5.1.2e spans of one document (only suggestions: nothing is stored)."""
    reader = await archivist_reader(request)
    service = woo_service(request)
    found = await service.request(reader, request.match_info["request_id"])
    doc = await service.document(reader, found, request.match_info["event_id"])
    names = suggestion_names(request.app[SETTINGS].data_dir)
    return web.json_response(
        {"event_id": doc.event.event_id, "suggestions": suggestions(doc.text, names)}
    )


async def put_assessment(request: web.Request) -> web.Response:
    reader = await archivist_reader(request)
    new = parse_assessment(await json_body(request))
    service = woo_service(request)
    saved = await service.assess(
        reader, request.match_info["request_id"], request.match_info["event_id"], new
    )
    history = await service.history(reader, saved.request_id, saved.event_id)
    body = assessment_to_dict(saved)
    body["history"] = [assessment_to_dict(a) for a in history]
    return web.json_response(body)


async def get_grounds(request: web.Request) -> web.Response:
    await archivist_reader(request)
    return web.json_response(
        {
            "grounds": [
                {
                    "code": g.code,
                    "article": g.article,
                    "title": g.title,
                    "description": g.description,
                    "absolute": g.absolute,
                }
                for g in GROUNDS
            ]
        }
    )


WOO_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v1/woo/grounds", get_grounds),
    ("POST", "/api/v1/woo/requests", post_request),
    ("GET", "/api/v1/woo/requests", get_requests),
    ("GET", "/api/v1/woo/requests/{request_id}", get_request),
    ("PUT", "/api/v1/woo/requests/{request_id}/assessments/{event_id}", put_assessment),
    ("GET", "/api/v1/woo/requests/{request_id}/documents/{event_id}/suggestions",
     get_suggestions),
]
