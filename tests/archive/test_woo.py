"""The Woo case log in the store: requests and assessments sealed, chained, access-logged,
appendable by a reader next to the writer, superseding without losing history, refusing bad
input without a trace, and any tampering caught by verify (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from archiver_bot.archive import (
    Actor,
    Archive,
    DuplicateWooReferenceError,
    UnknownWooRequestError,
    WooInputError,
    WooSpan,
)

from .conftest import OTHER_ROOM, ROOM, Backend, OpenArchive, message

ARCHIVIST = Actor("@archivaris:rijk.example", "Woo-verzoek 2026-0412")


async def _woo_rows(backend: Backend) -> list[Any]:
    return await backend.sql("SELECT * FROM archive_woo_log ORDER BY seq")


async def _access_actions(archive: Archive) -> list[str]:
    return [e.action for e in await archive.access_log(ARCHIVIST, limit=1000)]


async def _request(archive: Archive, reference: str = "2026-0412") -> str:
    created = await archive.woo_create_request(
        ARCHIVIST,
        reference=reference,
        title="Chats over de stikstofaanpak",
        received="2026-11-30",
        rooms=[ROOM],
        from_ts=0,
        to_ts=None,
        query=None,
    )
    return created.id


async def test_request_and_assessments_are_sealed_chained_and_logged(
    open_store: OpenArchive, backend: Backend
) -> None:
    writer = await open_store()
    await writer.ingest([message(1, "Bel 0612345678 over het besluit")])
    reader = await open_store(role="reader")  # the bridge, next to the writer
    request_id = await _request(reader)
    first = await reader.woo_assess(
        ARCHIVIST, request_id, "$ev1:rijk.example", decision="niet_openbaar", grounds=["5.2"]
    )
    second = await reader.woo_assess(
        ARCHIVIST,
        request_id,
        "$ev1:rijk.example",
        decision="deels_openbaar",
        grounds=["5.1.2e"],
        spans=[WooSpan(4, 14, "5.1.2e")],
        note="telefoonnummer",
    )
    assert second.seq > first.seq

    found = await reader.woo_request(ARCHIVIST, request_id)
    assert (found.reference, found.rooms, found.received) == ("2026-0412", [ROOM], "2026-11-30")
    assert [r.id for r in await reader.woo_requests(ARCHIVIST)] == [request_id]
    history = await reader.woo_assessments(ARCHIVIST, request_id)
    assert [a.decision for a in history] == ["niet_openbaar", "deels_openbaar"]  # both kept
    assert history[-1].spans == [WooSpan(4, 14, "5.1.2e")]
    assert history[-1].note == "telefoonnummer"
    assert history[-1].assessed_by == ARCHIVIST.user_id

    # nothing of the request or the assessment is readable in the database
    raw = b"".join(bytes(row.details) for row in await _woo_rows(backend))
    for secret in (b"2026-0412", b"stikstof", b"telefoonnummer", b"ev1", b"5.1.2e"):
        assert secret not in raw
    # the archived message itself is untouched
    assert (await reader.get_event(ARCHIVIST, "$ev1:rijk.example")).content == {
        "msgtype": "m.text",
        "body": "Bel 0612345678 over het besluit",
    }
    actions = await _access_actions(reader)
    for action in ("woo_create_request", "woo_assess", "woo_request", "woo_assessments"):
        assert action in actions
    await reader.close()
    report = await writer.verify()
    assert report.ok, report
    assert report.woo_log is not None
    assert report.woo_log.entries == 3


@pytest.mark.parametrize("column", ["details", "user_id", "kind"])
async def test_tampering_with_a_woo_record_breaks_verify(
    open_store: OpenArchive, backend: Backend, column: str
) -> None:
    archive = await open_store()
    await archive.ingest([message(1, "Hallo")])
    request_id = await _request(archive)
    await archive.woo_assess(
        ARCHIVIST, request_id, "$ev1:rijk.example", decision="niet_openbaar", grounds=["5.2"]
    )
    await archive.checkpoint()
    assert (await archive.verify()).ok
    if column == "details":
        rows = await _woo_rows(backend)
        forged = bytes(rows[1].details)[:-1] + bytes([bytes(rows[1].details)[-1] ^ 1])
        await backend.sql("UPDATE archive_woo_log SET details = :d WHERE seq = 2", d=forged)
    elif column == "user_id":
        await backend.sql(
            "UPDATE archive_woo_log SET user_id = '@ander:rijk.example' WHERE seq = 2"
        )
    else:
        await backend.sql("UPDATE archive_woo_log SET kind = 'request' WHERE seq = 2")
    report = await archive.verify()
    assert not report.ok
    assert report.woo_log is not None
    assert not report.woo_log.ok
    assert report.woo_log.position == 2
    assert report.woo_log.kind == "modified"


async def test_removing_the_newest_woo_record_breaks_verify(
    open_store: OpenArchive, backend: Backend
) -> None:
    archive = await open_store()
    await archive.ingest([message(1, "Hallo")])
    request_id = await _request(archive)
    await archive.woo_assess(
        ARCHIVIST, request_id, "$ev1:rijk.example", decision="niet_openbaar", grounds=["5.2"]
    )
    await archive.checkpoint()
    await backend.sql("DELETE FROM archive_woo_log WHERE seq = 2")
    report = await archive.verify()
    assert report.woo_log is not None
    assert not report.woo_log.ok
    assert report.woo_log.kind == "missing"


BAD_ASSESSMENTS: list[tuple[str, dict[str, Any]]] = [
    ("decision", {"decision": "geheim", "grounds": ["5.2"]}),
    ("needs at least one ground", {"decision": "niet_openbaar", "grounds": []}),
    ("needs the spans", {"decision": "deels_openbaar", "grounds": ["5.1.2e"]}),
    (
        "overlap",
        {
            "decision": "deels_openbaar",
            "grounds": ["5.1.2e"],
            "spans": [{"start": 0, "end": 4, "ground": "5.1.2e"},
                      {"start": 3, "end": 5, "ground": "5.1.2e"}],
        },
    ),
    (
        "start < end",
        {"decision": "deels_openbaar", "grounds": ["5.1.2e"],
         "spans": [{"start": 4, "end": 4, "ground": "5.1.2e"}]},
    ),
    (
        "one of the assessment's grounds",
        {"decision": "deels_openbaar", "grounds": ["5.1.2e"],
         "spans": [{"start": 0, "end": 4, "ground": "5.2"}]},
    ),
    ("takes no grounds", {"decision": "openbaar", "grounds": ["5.2"]}),
]


@pytest.mark.parametrize(("message_part", "fields"), BAD_ASSESSMENTS)
async def test_bad_assessments_change_nothing(
    open_store: OpenArchive, backend: Backend, message_part: str, fields: dict[str, Any]
) -> None:
    archive = await open_store()
    await archive.ingest([message(1, "Hallo daar")])
    request_id = await _request(archive)
    before = await _woo_rows(backend)
    log_before = await backend.sql("SELECT count(*) FROM archive_access_log")
    with pytest.raises(WooInputError, match=message_part):
        await archive.woo_assess(ARCHIVIST, request_id, "$ev1:rijk.example", **fields)
    assert await _woo_rows(backend) == before
    assert await backend.sql("SELECT count(*) FROM archive_access_log") == log_before


async def test_bad_requests_change_nothing(open_store: OpenArchive, backend: Backend) -> None:
    archive = await open_store()
    await archive.ingest([message(1, "Hallo")])
    await _request(archive)
    before = await _woo_rows(backend)
    with pytest.raises(DuplicateWooReferenceError):
        await _request(archive)
    with pytest.raises(WooInputError, match="not in the archive"):
        await archive.woo_create_request(
            ARCHIVIST, reference="2026-0413", title="t", received="2026-11-30", rooms=[OTHER_ROOM]
        )
    with pytest.raises(WooInputError, match="received"):
        await archive.woo_create_request(
            ARCHIVIST, reference="2026-0414", title="t", received="gisteren", rooms=[ROOM]
        )
    with pytest.raises(WooInputError, match="from_ts lies after"):
        await archive.woo_create_request(
            ARCHIVIST, reference="2026-0415", title="t", received="2026-11-30", rooms=[ROOM],
            from_ts=10, to_ts=5,
        )
    with pytest.raises(UnknownWooRequestError):
        await archive.woo_assess(
            ARCHIVIST, "0123456789abcdef", "$ev1:rijk.example", decision="openbaar", grounds=[]
        )
    with pytest.raises(UnknownWooRequestError):
        await archive.woo_request(ARCHIVIST, "0123456789abcdef")
    assert await _woo_rows(backend) == before


async def test_concurrent_readers_append_one_linear_chain(
    open_store: OpenArchive, backend: Backend
) -> None:
    writer = await open_store()
    await writer.ingest([message(n, f"bericht {n}") for n in range(1, 6)])
    readers = [await open_store(role="reader") for _ in range(3)]
    request_id = await _request(readers[0])

    async def assess(reader: Archive, n: int) -> None:
        await reader.woo_assess(
            ARCHIVIST, request_id, f"$ev{n}:rijk.example", decision="niet_openbaar",
            grounds=["5.1.1c"],
        )

    await asyncio.gather(*(assess(readers[n % 3], n) for n in range(1, 6)))
    for reader in readers:
        await reader.close()
    report = await writer.verify()
    assert report.ok, report
    assert report.woo_log is not None
    assert report.woo_log.entries == 6
    history = await writer.woo_assessments(ARCHIVIST, request_id)
    assert sorted(a.event_id for a in history) == [f"$ev{n}:rijk.example" for n in range(1, 6)]


async def test_restart_after_woo_writes_by_a_stopped_writer(open_store: OpenArchive) -> None:
    writer = await open_store()
    await writer.ingest([message(1, "Hallo")])
    await writer.close()
    reader = await open_store(role="reader")
    await _request(reader)
    await reader.close()
    restarted = await open_store()  # a reader's Woo writes are not taken for tampering
    assert (await restarted.verify()).ok
