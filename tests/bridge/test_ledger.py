"""The ledger: real AS transactions from Synapse, and what it does with forged or bad input."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from server_bridge.appservice.ledger import Ledger, Outcome, RecordResult
from server_bridge.appservice.registration import BridgePaths
from server_bridge.appservice.transactions import LedgerRow, parse_transaction
from tests.bridge.conftest import Stack
from tests.e2e_client import wait_for


async def ledger_rows(stack: Stack, room_id: str) -> list[LedgerRow]:
    return (await stack.service.ledger.rows_by_room()).get(room_id, [])


async def wait_for_ledger(stack: Stack, room_id: str, event_id: str) -> list[LedgerRow]:
    async def arrived() -> list[LedgerRow] | None:
        rows = await ledger_rows(stack, room_id)
        return rows if any(r.event_id == event_id for r in rows) else None

    found: list[LedgerRow] = await wait_for(arrived, timeout=60, interval=0.05)
    return found


async def put(
    stack: Stack, txn_id: str, body: bytes | dict[str, Any], token: str | None = "hs"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {stack.hs_token if token == 'hs' else token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"{stack.settings.bridge_url}/_matrix/app/v1/transactions/{txn_id}"
    async with stack.session.put(url, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def event(n: int, room: str = "!ledgertest:test.localhost") -> dict[str, Any]:
    return {
        "event_id": f"$forged{n}",
        "room_id": room,
        "sender": "@minister:test.localhost",
        "type": "m.room.encrypted",
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "geheim"},
    }


async def counts(stack: Stack) -> tuple[int, int]:
    ledger = stack.service.ledger
    return await ledger.event_count(), await ledger.transaction_count()


async def test_the_homeserver_feeds_the_ledger_without_content(stack: Stack) -> None:
    minister, amb = await stack.user("minister"), await stack.user("ambtenaar3")
    room_id = await minister.create_room(name="Begroting", invite=[amb.user_id])
    event_id = await minister.text_when_archived(room_id, "het-geheime-woord-7731")
    rows = await wait_for_ledger(stack, room_id, event_id)
    row = next(r for r in rows if r.event_id == event_id)
    assert (row.sender, row.type, row.encrypted) == (minister.user_id, "m.room.message", False)
    assert row.origin_server_ts > 0
    joins = [r for r in rows if r.state_key == stack.archiver and r.membership == "join"]
    assert joins, "the archiver's join is in the ledger"
    # No content anywhere in the ledger's database.
    ledger_file = BridgePaths.for_data_dir(stack.settings.data_dir).ledger
    assert b"het-geheime-woord-7731" not in ledger_file.read_bytes()

    # A room of officials only is none of the ledger's business. Synapse hands events to an
    # Application Service in stream order, so once a later event of the archived room has
    # reached the ledger, the lunch message would have arrived before it if it were pushed.
    other = await amb.create_room(name="Lunch")
    status, sent = await amb.text(other, "broodje kaas")
    assert status == 200
    marker = await minister.text_when_archived(room_id, "na de lunch")
    await wait_for_ledger(stack, room_id, marker)
    assert await ledger_rows(stack, other) == []


async def test_a_forged_transaction_gets_403_and_changes_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    before = await counts(stack)
    with caplog.at_level(logging.WARNING, logger="server_bridge.appservice.routes"):
        status, body = await put(stack, "forged-1", {"events": [event(1)]}, token="x" * 48)
    assert status == 403
    assert body["errcode"] == "M_FORBIDDEN"
    assert "wrong homeserver token" in caplog.text
    assert "x" * 48 not in caplog.text
    status, _ = await put(stack, "forged-2", {"events": [event(2)]}, token=None)
    assert status == 401
    # A token in the legacy query parameter is checked the same way.
    url = f"{stack.settings.bridge_url}/transactions/forged-3?access_token=wrong"
    async with stack.session.put(url, json={"events": [event(3)]}) as resp:
        assert resp.status == 403
    assert await counts(stack) == before
    # Neither token ever reaches the homeserver's log.
    log = (stack.settings.homeserver_dir / "homeserver.log").read_text(errors="replace")
    registration = (BridgePaths.for_data_dir(stack.settings.data_dir).tokens).read_text()
    for token in json.loads(registration).values():
        assert token not in log


async def test_a_transaction_is_recorded_once_even_across_restarts(stack: Stack) -> None:
    before_events, before_txns = await counts(stack)
    body = {"events": [event(10), event(11)]}
    assert await put(stack, "idem-1", body) == (200, {})
    assert await put(stack, "idem-1", body) == (200, {})
    assert await counts(stack) == (before_events + 2, before_txns + 1)
    # The events and the delivery are in the database: a second ledger (as after a restart)
    # takes a retry as a retry.
    other = await Ledger.open(BridgePaths.for_data_dir(stack.settings.data_dir).ledger)
    try:
        rows = parse_transaction(json.dumps(body).encode())
        retry = await other.record_transaction("idem-1", rows)
        assert (retry.outcome, retry.new_events) == (Outcome.DUPLICATE, 0)
    finally:
        await other.close()
    assert await counts(stack) == (before_events + 2, before_txns + 1)


async def test_an_event_is_recorded_once_whatever_transaction_brings_it(stack: Stack) -> None:
    before_events, before_txns = await counts(stack)
    assert await put(stack, "carrier-1", {"events": [event(40), event(41)]}) == (200, {})
    # Another transaction id carrying one known event and one new one.
    assert await put(stack, "carrier-2", {"events": [event(41), event(42)]}) == (200, {})
    assert await counts(stack) == (before_events + 3, before_txns + 2)
    rows = await ledger_rows(stack, "!ledgertest:test.localhost")
    ids = [r.event_id for r in rows]
    for n in (40, 41, 42):
        assert ids.count(f"$forged{n}") == 1
    [second] = await stack.service.ledger.transactions("carrier-2")
    assert (second["event_count"], second["new_events"]) == (2, 1)


async def test_a_reused_transaction_id_with_other_events_is_recorded_and_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """What Synapse on SQLite does after every restart: its transaction ids start at 1."""
    before_events, before_txns = await counts(stack)
    first = {"events": [event(50), event(51)]}
    later = {"events": [event(52)]}
    with caplog.at_level(logging.INFO, logger="server_bridge.appservice"):
        assert await put(stack, "reused-1", first) == (200, {})
        assert "used before" not in caplog.text
        assert await put(stack, "reused-1", later) == (200, {})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert "reused-1" in message
    assert "used before for other events" in message
    # Metadata only: neither event ids nor content in the log line.
    assert "$forged5" not in message
    assert "geheim" not in caplog.text
    assert await counts(stack) == (before_events + 3, before_txns + 2)
    ids = {r.event_id for r in await ledger_rows(stack, "!ledgertest:test.localhost")}
    assert {"$forged50", "$forged51", "$forged52"} <= ids
    log_rows = await stack.service.ledger.transactions("reused-1")
    assert [r["event_count"] for r in log_rows] == [2, 1]
    assert log_rows[0]["digest"] != log_rows[1]["digest"]
    # A retry of either delivery changes nothing and warns no more.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="server_bridge.appservice"):
        assert await put(stack, "reused-1", later) == (200, {})
        assert await put(stack, "reused-1", first) == (200, {})
    assert caplog.records == []
    assert await counts(stack) == (before_events + 3, before_txns + 2)


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        (b"{not json", 400, "M_NOT_JSON"),
        (b"[1, 2]", 400, "M_BAD_JSON"),
        (json.dumps({"events": {"a": 1}}).encode(), 400, "M_BAD_JSON"),
        # One event without a room: the valid one next to it is not recorded either.
        (json.dumps({"events": [event(20), {**event(21), "room_id": None}]}).encode(), 400,
         "M_BAD_JSON"),
        (json.dumps({"events": [event(22), "not an event"]}).encode(), 400, "M_BAD_JSON"),
        (json.dumps({"events": [{**event(23), "origin_server_ts": "yesterday"}]}).encode(), 400,
         "M_BAD_JSON"),
        (json.dumps({"events": [event(n) for n in range(1001)]}).encode(), 413, "M_TOO_LARGE"),
    ],
    ids=["not-json", "not-object", "events-not-list", "no-room", "not-an-event", "bad-ts",
         "too-many-events"],
)
async def test_bad_input_is_the_senders_fault_and_records_nothing(
    stack: Stack, body: bytes, status: int, errcode: str
) -> None:
    before = await counts(stack)
    got, data = await put(stack, f"bad-{errcode}-{len(body)}", body)
    assert (got, data["errcode"]) == (status, errcode)
    assert await counts(stack) == before


async def test_a_huge_body_is_refused_without_reading_it_all(stack: Stack) -> None:
    before = await counts(stack)
    status, data = await put(stack, "huge", b" " * (33 * 1024**2))
    assert (status, data["errcode"]) == (413, "M_TOO_LARGE")
    assert await counts(stack) == before


async def test_a_ledger_failure_is_a_500_so_that_synapse_retries(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_events, before_txns = await counts(stack)

    async def broken(txn_id: str, rows: object) -> RecordResult:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    body = {"events": [event(30)]}
    with monkeypatch.context() as patch:
        patch.setattr(stack.service.ledger, "record_transaction", broken)
        status, data = await put(stack, "retry-1", body)
    assert (status, data["errcode"]) == (500, "M_UNKNOWN")
    assert await counts(stack) == (before_events, before_txns)
    # Synapse's retry of the same transaction is then recorded.
    assert await put(stack, "retry-1", body) == (200, {})
    assert await counts(stack) == (before_events + 1, before_txns + 1)
