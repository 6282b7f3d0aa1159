"""The OpenAPI document describes exactly what the bridge serves under /api/v1, and real
answers validate against its schemas."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import jsonschema
from aiohttp import web

from tests.review.conftest import ReviewStack


def served_api_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/") and route.method != "HEAD":
            routes.add((route.method.lower(), path))
    return routes


def schema_for(doc: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    response = doc["paths"][path][method]["responses"]["200"]
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}


def validate(doc: dict[str, Any], path: str, body: Any) -> None:
    schema = schema_for(doc, path)
    resolver_doc = {"components": doc["components"], **schema}
    jsonschema.validate(body, resolver_doc, cls=jsonschema.Draft202012Validator)


async def test_openapi_document_matches_the_served_routes(review_stack: ReviewStack) -> None:
    status, doc, _ = await review_stack.get("/api/v1/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == served_api_routes(review_stack.app)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
            assert {"401", "403"} <= set(op["responses"]), path
            assert {"200", "201"} & set(op["responses"]), path
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})


async def test_real_answers_validate_against_the_document(review_stack: ReviewStack) -> None:
    _, doc, _ = await review_stack.get("/api/v1/openapi.json")
    a = review_stack.archive
    room = quote(a.room, safe="")
    checks = {
        "/api/v1/rooms": "/api/v1/rooms",
        "/api/v1/rooms/{room_id}/events": f"/api/v1/rooms/{room}/events?limit=1000",
        "/api/v1/rooms/{room_id}/verify": f"/api/v1/rooms/{room}/verify",
        "/api/v1/events/{event_id}": f"/api/v1/events/{quote(a.ids['edited'], safe='')}",
        "/api/v1/search": "/api/v1/search?q=begroting",
        "/api/v1/audit": "/api/v1/audit?limit=20",
        "/api/v1/audit/completeness": "/api/v1/audit/completeness",
    }
    for documented, url in checks.items():
        status, body, _ = await review_stack.get(url)
        assert status == 200, (url, body)
        validate(doc, documented, body)
    status, body, _ = await review_stack.get("/api/v1/rooms/!x:y/events")
    jsonschema.validate(body, doc["components"]["schemas"]["Error"])
