"""The Woo API under /api/v1/woo against a real archive: archivists only, requests and
their documents in scope, assessments that supersede without losing history, and every kind
of bad input refused with a 4xx and nothing changed."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.review.conftest import BASE_TS, ReviewStack


def q(value: str) -> str:
    return quote(value, safe="")


async def call(
    stack: ReviewStack, method: str, path: str, body: Any = None, who: str | None = "archivaris"
) -> tuple[int, Any]:
    headers = {"X-Rijkschat-Purpose": "Woo-test"}
    if who is not None:
        headers["Authorization"] = f"Bearer {stack.tokens.get(who, who)}"
    async with stack.session.request(
        method, stack.url + path, json=body, headers=headers
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def new_ref() -> str:
    return f"2026-{secrets.token_hex(3)}"


async def create(stack: ReviewStack, **fields: Any) -> dict[str, Any]:
    body = {"reference": new_ref(), "title": "Chats over de begroting",
            "rooms": [stack.archive.room], **fields}
    status, created = await call(stack, "POST", "/api/v1/woo/requests", body)
    assert status == 201, created
    return created


async def case(stack: ReviewStack, request_id: str) -> dict[str, Any]:
    status, body = await call(stack, "GET", f"/api/v1/woo/requests/{request_id}")
    assert status == 200, body
    return body


def doc(case_body: dict[str, Any], event_id: str) -> dict[str, Any]:
    for document in case_body["documents"]:
        if document["event_id"] == event_id:
            return document
    raise AssertionError(f"{event_id} not among the documents")


async def test_authorisation_matrix_on_every_woo_endpoint(review_stack: ReviewStack) -> None:
    stack = review_stack
    made = await create(stack)
    event = q(stack.archive.ids["first"])
    calls: list[tuple[str, str, Any, int]] = [
        ("GET", "/api/v1/woo/grounds", None, 200),
        ("GET", "/api/v1/woo/requests", None, 200),
        ("POST", "/api/v1/woo/requests",
         {"reference": new_ref(), "title": "t", "rooms": [stack.archive.room]}, 201),
        ("GET", f"/api/v1/woo/requests/{made['id']}", None, 200),
        ("PUT", f"/api/v1/woo/requests/{made['id']}/assessments/{event}",
         {"decision": "openbaar"}, 200),
    ]
    for method, path, body, ok in calls:
        status, answer = await call(stack, method, path, body, who=None)
        assert status == 401, (path, answer)
        assert answer["errcode"] == "M_MISSING_TOKEN"
        status, answer = await call(stack, method, path, body, who="not-a-token")
        assert status == 401, (path, answer)
        for who in ("ambtenaar1", "minister"):
            status, answer = await call(stack, method, path, body, who=who)
            assert status == 403, (path, who, answer)
            assert answer["errcode"] == "M_FORBIDDEN"
        status, answer = await call(stack, method, path, body)
        assert status == ok, (path, answer)
    # the refused calls left nothing behind: only the archivist's one assessment exists
    body = await case(stack, made["id"])
    assert [d["assessment"]["assessed_by"] for d in body["documents"] if d["assessment"]] == [
        stack.archive.user("archivaris")
    ]


async def test_documents_in_scope_assessments_and_history(review_stack: ReviewStack) -> None:
    stack = review_stack
    ids = stack.archive.ids
    made = await create(stack, received="2026-11-30")
    assert made["received"] == "2026-11-30"
    assert made["created_by"] == stack.archive.user("archivaris")
    status, listed = await call(stack, "GET", "/api/v1/woo/requests")
    assert status == 200
    assert made["id"] in [r["id"] for r in listed["requests"]]

    body = await case(stack, made["id"])
    found = {d["event_id"] for d in body["documents"]}
    for label in ("first", "reply", "formatted", "edited", "edit", "redacted", "pdf", "png",
                  "undecryptable", "cafe", "thread-reply"):
        assert ids[label] in found, label
    for label in ("create", "name", "reaction", "redaction"):
        assert ids[label] not in found, label
    times = [d["origin_server_ts"] for d in body["documents"]]
    assert times == sorted(times)
    assert doc(body, ids["pdf"])["kind"] == "bijlage"
    assert doc(body, ids["edit"])["kind"] == "bewerking"
    assert doc(body, ids["edit"])["text"] == "Vergadering om 11 uur"
    assert doc(body, ids["first"])["assessment"] is None

    first = doc(body, ids["first"])["text"]
    start = first.index("begroting")
    path = f"/api/v1/woo/requests/{made['id']}/assessments/{q(ids['first'])}"
    status, saved = await call(stack, "PUT", path,
                               {"decision": "niet_openbaar", "grounds": ["5.2"]})
    assert status == 200, saved
    status, saved = await call(stack, "PUT", path, {
        "decision": "deels_openbaar", "grounds": ["5.1.2E", "5.1.2i"],
        "spans": [{"start": start, "end": start + 9, "ground": "5.1.2i"}],
        "note": "financieel",
    })
    assert status == 200, saved
    assert saved["grounds"] == ["5.1.2e", "5.1.2i"]  # normalised
    assert [h["decision"] for h in saved["history"]] == ["niet_openbaar", "deels_openbaar"]

    body = await case(stack, made["id"])
    current = doc(body, ids["first"])
    assert current["assessment"]["decision"] == "deels_openbaar"
    assert current["assessment"]["spans"] == [
        {"start": start, "end": start + 9, "ground": "5.1.2i"}]
    assert [h["decision"] for h in current["history"]] == ["niet_openbaar", "deels_openbaar"]
    assert body["assessed"] == 1
    # assessing never edits: the archived message is as it was
    status, event = await call(stack, "GET", f"/api/v1/events/{q(ids['first'])}")
    assert event["content"]["body"] == first
    # and the access log names the Woo writes and reads
    status, log = await call(stack, "GET", "/api/v1/audit?limit=50")
    actions = {e["action"] for e in log["entries"]}
    assert {"woo_create_request", "woo_assess", "woo_request", "woo_assessments"} <= actions


async def test_period_and_query_limit_the_scope(review_stack: ReviewStack) -> None:
    stack = review_stack
    ids = stack.archive.ids
    by_query = await case(stack, (await create(stack, query="begroting"))["id"])
    found = {d["event_id"] for d in by_query["documents"]}
    assert ids["first"] in found
    assert ids["formatted"] in found
    assert ids["cafe"] not in found
    assert all("begroting" in d["text"] for d in by_query["documents"])
    # the showcase room's events are one minute apart from BASE_TS: keep the first ten
    period = await create(stack, from_ts=0, to_ts=BASE_TS + 10 * 60_000)
    in_period = await case(stack, period["id"])
    assert all(d["origin_server_ts"] <= BASE_TS + 10 * 60_000 for d in in_period["documents"])
    assert ids["first"] in {d["event_id"] for d in in_period["documents"]}
    assert ids["cafe"] not in {d["event_id"] for d in in_period["documents"]}
    # a message outside the query's scope cannot be assessed for it
    status, answer = await call(
        stack, "PUT", f"/api/v1/woo/requests/{by_query['id']}/assessments/{q(ids['cafe'])}",
        {"decision": "openbaar"})
    assert status == 422
    assert "scope" in answer["error"]


async def test_bad_input_is_refused_and_changes_nothing(review_stack: ReviewStack) -> None:
    stack = review_stack
    ids = stack.archive.ids
    made = await create(stack)
    rid = made["id"]
    base = f"/api/v1/woo/requests/{rid}/assessments/"
    text = "Goedemorgen, de begroting staat op de agenda."
    assert len(text) == 45

    async def state() -> tuple[Any, Any]:
        _, listed = await call(stack, "GET", "/api/v1/woo/requests")
        return listed, await case(stack, rid)

    before = await state()
    bad_assessments: list[tuple[str, str, Any, int, str]] = [
        ("unknown ground", ids["first"], {"decision": "niet_openbaar", "grounds": ["5.9.9z"]},
         422, "unknown Woo ground"),
        ("no ground", ids["first"], {"decision": "niet_openbaar", "grounds": []},
         422, "at least one ground"),
        ("deels without spans", ids["first"], {"decision": "deels_openbaar",
                                               "grounds": ["5.1.2e"]}, 422, "spans"),
        ("span past the text", ids["first"], {
            "decision": "deels_openbaar", "grounds": ["5.1.2e"],
            "spans": [{"start": 40, "end": 46, "ground": "5.1.2e"}]}, 422, "outside"),
        ("negative span", ids["first"], {
            "decision": "deels_openbaar", "grounds": ["5.1.2e"],
            "spans": [{"start": -1, "end": 3, "ground": "5.1.2e"}]}, 422, "start < end"),
        ("overlapping spans", ids["first"], {
            "decision": "deels_openbaar", "grounds": ["5.1.2e"],
            "spans": [{"start": 0, "end": 5, "ground": "5.1.2e"},
                      {"start": 4, "end": 8, "ground": "5.1.2e"}]}, 422, "overlap"),
        ("span ground not chosen", ids["first"], {
            "decision": "deels_openbaar", "grounds": ["5.1.2e"],
            "spans": [{"start": 0, "end": 5, "ground": "5.2"}]}, 422, "not among"),
        ("unknown decision", ids["first"], {"decision": "geheim", "grounds": ["5.2"]},
         422, "decision"),
        ("unknown field", ids["first"], {"decision": "openbaar", "oordeel": "x"},
         422, "unknown field"),
        ("other room", "$r1-ove", {"decision": "openbaar"}, 404, ""),
        ("not a message", ids["name"], {"decision": "openbaar"}, 422, "not a message"),
        ("unknown event", "$nope", {"decision": "openbaar"}, 404, ""),
    ]
    for label, event_id, body, expected, words in bad_assessments:
        status, answer = await call(stack, "PUT", base + q(event_id), body)
        assert status == expected, (label, answer)
        assert words in answer["error"], (label, answer)
        assert set(answer) == {"errcode", "error"}
    # a message in another room of the archive is outside this request's scope
    other = (await call(stack, "GET",
                        f"/api/v1/rooms/{q(stack.archive.other_room)}/events"))[1]["events"]
    status, answer = await call(stack, "PUT", base + q(other[0]["event_id"]),
                                {"decision": "openbaar"})
    assert status == 422
    assert "another room" in answer["error"]
    status, answer = await call(
        stack, "PUT", f"/api/v1/woo/requests/0123456789abcdef/assessments/{q(ids['first'])}",
        {"decision": "openbaar"})
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
    status, answer = await call(stack, "GET", "/api/v1/woo/requests/0123456789abcdef")
    assert status == 404
    async with stack.session.put(
        stack.url + base + q(ids["first"]), data=b"{not json",
        headers={"Authorization": f"Bearer {stack.tokens['archivaris']}"},
    ) as resp:
        assert resp.status == 400

    bad_requests: list[tuple[str, Any, int, str]] = [
        ("duplicate reference", {"reference": made["reference"], "title": "t",
                                 "rooms": [stack.archive.room]}, 409, "exists already"),
        ("unknown room", {"reference": new_ref(), "title": "t",
                          "rooms": ["!bestaatniet:example"]}, 404, "not in the archive"),
        ("no rooms", {"reference": new_ref(), "title": "t", "rooms": []}, 422, "rooms"),
        ("no title", {"reference": new_ref(), "rooms": [stack.archive.room]}, 422, "title"),
        ("bad reference", {"reference": "a b", "title": "t", "rooms": [stack.archive.room]},
         422, "reference"),
        ("bad date", {"reference": new_ref(), "title": "t", "rooms": [stack.archive.room],
                      "received": "30-11-2026"}, 422, "received"),
        ("period reversed", {"reference": new_ref(), "title": "t",
                             "rooms": [stack.archive.room], "from_ts": 5, "to_ts": 1},
         422, "from_ts"),
    ]
    for label, body, expected, words in bad_requests:
        status, answer = await call(stack, "POST", "/api/v1/woo/requests", body)
        assert status == expected, (label, answer)
        assert words in answer["error"], (label, answer)
    assert await state() == before
