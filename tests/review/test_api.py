"""The archivist JSON API: who may call it, what it answers, and how it treats bad input."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

import pytest

from tests.review.conftest import BIG_EVENTS, PDF_BYTES, XSS_SCRIPT, ReviewStack


def q(value: str) -> str:
    return quote(value, safe="")


def endpoints(stack: ReviewStack) -> list[str]:
    a = stack.archive
    return [
        "/api/v1/rooms",
        f"/api/v1/rooms/{q(a.room)}/events?limit=5",
        f"/api/v1/rooms/{q(a.room)}/verify",
        f"/api/v1/events/{q(a.ids['first'])}",
        f"/api/v1/events/{q(a.ids['pdf'])}/attachment",
        "/api/v1/search?q=begroting",
        "/api/v1/audit?limit=5",
        "/api/v1/audit/completeness",
        "/api/v1/openapi.json",
    ]


async def access_count(stack: ReviewStack) -> int:
    status, body, _ = await stack.get("/api/v1/audit?limit=1")
    assert status == 200, body
    return int(body["entries"][0]["seq"])


async def test_authorisation_matrix_on_every_endpoint(review_stack: ReviewStack) -> None:
    for path in endpoints(review_stack):
        status, body, _ = await review_stack.get(path, who=None)
        assert status == 401, (path, body)
        status, body, _ = await review_stack.get(path, who="not-a-token")
        assert status == 401, (path, body)
        for who in ("ambtenaar1", "minister"):  # an official and a key official
            status, body, _ = await review_stack.get(path, who=who)
            assert status == 403, (path, who, body)
        status, body, _ = await review_stack.get(path)
        assert status == 200, (path, body)


async def test_every_archivist_call_lands_in_the_access_log(review_stack: ReviewStack) -> None:
    archivist = review_stack.archive.user("archivaris")
    for path in endpoints(review_stack):
        if path.endswith("openapi.json"):
            continue  # describes the API, reads nothing from the archive
        before = await access_count(review_stack)
        status, body, _ = await review_stack.get(
            path, headers={"X-Rijkschat-Purpose": "Woo-verzoek 2026-99"})
        assert status == 200, (path, body)
        status, log_body, _ = await review_stack.get(f"/api/v1/audit?limit=50&user={q(archivist)}")
        entries = [e for e in log_body["entries"] if e["seq"] > before]
        assert entries, path
        assert all(e["user_id"] == archivist for e in entries)
        assert any("Woo-verzoek 2026-99" in e["purpose"] for e in entries), (path, entries)
    # refused callers read nothing, so they add nothing
    before = await access_count(review_stack)
    await review_stack.get("/api/v1/rooms", who="minister")
    await review_stack.get("/api/v1/rooms", who=None)
    status, body, _ = await review_stack.get("/api/v1/audit?limit=3")
    assert body["entries"][1]["seq"] == before  # only the read of the log itself was added


async def test_rooms_list_counts_retention_and_hold(review_stack: ReviewStack) -> None:
    status, body, _ = await review_stack.get("/api/v1/rooms")
    assert status == 200
    rooms = {r["room_id"]: r for r in body["rooms"]}
    a = review_stack.archive
    assert rooms[a.big_room]["event_count"] == BIG_EVENTS
    kabinet = rooms[a.room]
    assert kabinet["name"] == "Kabinetsberaad"
    assert kabinet["retention"] == "bewaren"  # a key official's room is kept forever
    assert kabinet["undecryptable"] == 1
    assert a.user("minister") in kabinet["key_officials"]
    assert rooms[a.other_room]["legal_hold"] is True
    assert kabinet["first_ts"] <= kabinet["last_ts"]


async def test_pagination_is_complete_and_in_order(review_stack: ReviewStack) -> None:
    room = q(review_stack.archive.big_room)
    seen: list[tuple[int, str]] = []
    token: str | None = None
    pages = 0
    while True:
        path = f"/api/v1/rooms/{room}/events?limit=173" + (f"&from={q(token)}" if token else "")
        status, body, _ = await review_stack.get(path)
        assert status == 200, body
        pages += 1
        assert len(body["events"]) <= 173
        seen.extend((e["origin_server_ts"], e["content"]["body"]) for e in body["events"])
        token = body["next"]
        if token is None:
            break
    assert pages == -(-BIG_EVENTS // 173)
    bodies = [b for _, b in seen]
    assert len(bodies) == BIG_EVENTS == len(set(bodies))
    assert [int(b.split()[1]) for b in bodies] == list(range(BIG_EVENTS))  # stable on ties
    assert [ts for ts, _ in seen] == sorted(ts for ts, _ in seen)


async def test_events_carry_decryption_links_and_original_content(
    review_stack: ReviewStack,
) -> None:
    a = review_stack.archive
    status, body, _ = await review_stack.get(f"/api/v1/rooms/{q(a.room)}/events?limit=1000")
    assert status == 200
    assert body["next"] is None
    events = {e["event_id"]: e for e in body["events"]}
    redacted = events[a.ids["redacted"]]
    assert redacted["redacted_by"] == a.ids["redaction"]
    assert redacted["content"]["body"] == "Het vertrouwelijke memo over de fusie"
    assert events[a.ids["edited"]]["edits"] == [a.ids["edit"]]
    assert events[a.ids["undecryptable"]]["decryption"] == "undecryptable"
    assert events[a.ids["create"]]["decryption"] == "plaintext"
    assert events[a.ids["script"]]["content"]["body"] == XSS_SCRIPT
    assert events[a.ids["reply"]]["relates_to"]["m.in_reply_to"]["event_id"] == a.ids["first"]
    for event in body["events"]:
        assert {"event_id", "room_id", "sender", "sender_device", "origin_server_ts", "type",
                "content", "decryption", "relates_to", "redacted_by", "edits"} <= set(event)


async def test_attachment_downloads_decrypted_with_its_name(review_stack: ReviewStack) -> None:
    event_id = review_stack.archive.ids["pdf"]
    status, body, resp = await review_stack.get(f"/api/v1/events/{q(event_id)}/attachment")
    assert status == 200
    assert body == PDF_BYTES
    assert resp.headers["Content-Type"] == "application/pdf"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "nota%20begroting.pdf" in disposition
    assert 'filename="nota begroting.pdf"' in disposition
    status, body, _ = await review_stack.get(
        f"/api/v1/events/{q(review_stack.archive.ids['first'])}/attachment")
    assert status == 404


async def test_search_finds_hits_with_their_room_and_filters(review_stack: ReviewStack) -> None:
    a = review_stack.archive
    status, body, _ = await review_stack.get("/api/v1/search?q=begroting")
    assert status == 200
    hits = body["hits"]
    assert {h["event"]["event_id"] for h in hits} >= {a.ids["first"], a.ids["formatted"]}
    assert all(h["room"] == {"room_id": a.room, "name": "Kabinetsberaad"} for h in hits)
    status, body, _ = await review_stack.get(f"/api/v1/search?q=cafe+email&room={q(a.room)}")
    assert [h["event"]["event_id"] for h in body["hits"]] == [a.ids["cafe"]]
    sender = q(a.user("sg"))
    status, body, _ = await review_stack.get(f"/api/v1/search?q=begroting&sender={sender}")
    # the reply quotes the minister in its fallback, so it is found too; newest first
    found = [h["event"]["event_id"] for h in body["hits"]]
    assert found == [a.ids["formatted"], a.ids["reply"]]
    reply_ts = body["hits"][1]["event"]["origin_server_ts"]
    status, body, _ = await review_stack.get(
        f"/api/v1/search?q=begroting&sender={sender}&from_ts={reply_ts + 1}")
    assert [h["event"]["event_id"] for h in body["hits"]] == [a.ids["formatted"]]
    status, body, _ = await review_stack.get("/api/v1/search?q=planning&limit=7")
    assert len(body["hits"]) == 7
    status, body, _ = await review_stack.get("/api/v1/search?q=onbekendwoord")
    assert body["hits"] == []


async def test_verify_reports_an_intact_room(review_stack: ReviewStack) -> None:
    status, body, _ = await review_stack.get(
        f"/api/v1/rooms/{q(review_stack.archive.room)}/verify")
    assert status == 200, body
    assert body["ok"] is True
    assert body["checked"] > 20
    assert body["problems"] == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/rooms/{unknown}/events", 404),
        ("/api/v1/rooms/{unknown}/verify", 404),
        ("/api/v1/rooms/not-a-room/events", 400),
        ("/api/v1/rooms/%21with%20space/events", 400),
        ("/api/v1/rooms/{room}/events?from=%%%", 400),
        ("/api/v1/rooms/{room}/events?from=bm90LWEtdG9rZW4", 400),
        ("/api/v1/rooms/{room}/events?from=OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTkuMQ", 400),
        ("/api/v1/rooms/{room}/events?from=" + "A" * 200, 400),
        ("/api/v1/rooms/{room}/events?limit=0", 400),
        ("/api/v1/rooms/{room}/events?limit=-5", 400),
        ("/api/v1/rooms/{room}/events?limit=1000000000", 400),
        ("/api/v1/rooms/{room}/events?limit=99999999999999999999999999", 400),
        ("/api/v1/rooms/{room}/events?limit=tien", 400),
        ("/api/v1/events/%24nope%3Ax", 404),
        ("/api/v1/events/nope", 400),
        ("/api/v1/events/%24nope%3Ax/attachment", 404),
        ("/api/v1/search", 400),
        ("/api/v1/search?q=%20%20", 400),
        ("/api/v1/search?q=" + "woord+" * 100, 400),
        ("/api/v1/search?q=a&room=kamer", 400),
        ("/api/v1/search?q=a&sender=iemand", 400),
        ("/api/v1/search?q=a&from_ts=gisteren", 400),
        ("/api/v1/search?q=a&limit=100000", 400),
        ("/api/v1/audit?limit=0", 400),
        ("/api/v1/audit?user=x", 400),
        ("/api/v1/nothing-here", 404),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    review_stack: ReviewStack, path: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    a = review_stack.archive
    url = path.replace("{unknown}", q(f"!onbekend:{a.server}")).replace("{room}", q(a.room))
    with caplog.at_level(logging.WARNING):
        got, body, resp = await review_stack.get(url)
    assert got == status, (url, body)
    assert resp.headers["Content-Type"].startswith("application/json")
    assert set(body) == {"errcode", "error"}
    assert "Traceback" not in str(body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_megabyte_query_strings_are_refused_quickly(
    review_stack: ReviewStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/api/v1/search?q=" + "a" * 1_000_000,
                 "/api/v1/rooms?x=" + "b" * 2_000_000,
                 "/api/v1/search?q=" + "word%20" * 200):
        started = time.monotonic()
        status, _, _ = await review_stack.get(path)
        assert 400 <= status < 500, status
        assert time.monotonic() - started < 2
    # and the bridge still answers; nothing was logged as a crash
    status, _, _ = await review_stack.get("/api/v1/rooms")
    assert status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_concurrent_readers_all_get_answers(review_stack: ReviewStack) -> None:
    room = q(review_stack.archive.big_room)
    results = await asyncio.gather(*[
        review_stack.get(f"/api/v1/rooms/{room}/events?limit=50") for _ in range(8)
    ])
    assert all(status == 200 and len(body["events"]) == 50 for status, body, _ in results)


async def test_no_debug_or_introspection_endpoints(review_stack: ReviewStack) -> None:
    for path in ("/debug", "/_debug", "/api/v1/debug", "/api/v1/heapdump", "/metrics/debug",
                 "/archief/static/../../settings.py", "/api/v1/../../etc/passwd",
                 "/archief/static/", "/console", "/_matrix/app/v1/debug"):
        status, body, _ = await review_stack.get(path)
        assert status in (401, 403, 404, 405), (path, status)
        assert "Traceback" not in str(body)
