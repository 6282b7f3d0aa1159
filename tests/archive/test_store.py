"""Ingest and read back: exactly once, append-only relations, late decryption, rooms."""

from __future__ import annotations

from dataclasses import replace

import pytest

from archiver_bot.archive import (
    Actor,
    Archive,
    EventRecord,
    UnknownEventError,
)

from .conftest import ADVISEUR, BASE_TS, MINISTER, OTHER_ROOM, ROOM, OpenArchive, message

ARCHIVIST = Actor("@archivaris:rijk.example", "test: inzage dossier 2026-001")


async def test_ingested_events_read_back_decrypted_in_timeline_order(archive: Archive) -> None:
    batch = [message(i, f"bericht nummer {i}") for i in (3, 1, 2)]
    result = await archive.ingest(batch, sync_token="s1")
    assert (result.inserted, result.duplicates, result.rejected) == (3, 0, [])
    events, token = await archive.room_events(ARCHIVIST, ROOM, None, 10)
    assert [e.event_id for e in events] == [f"$ev{i}:rijk.example" for i in (1, 2, 3)]
    assert token is None
    first = events[0]
    assert first.content == {"msgtype": "m.text", "body": "bericht nummer 1"}
    assert (first.sender, first.sender_device, first.decryption) == (
        MINISTER,
        "DEVICEA",
        "decrypted",
    )
    assert first.encrypted == {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA1"}
    assert await archive.sync_token() == "s1"


async def test_same_event_twice_is_stored_once_even_after_restart(
    open_store: OpenArchive,
) -> None:
    archive = await open_store()
    first = await archive.ingest([message(1, "een"), message(2, "twee")], "s1")
    again = await archive.ingest([message(2, "twee"), message(2, "twee"), message(3, "drie")], "s2")
    assert (first.inserted, again.inserted, again.duplicates) == (2, 1, 2)
    await archive.close()
    reopened = await open_store()
    assert (await reopened.ingest([message(1, "een")], "s3")).duplicates == 1
    assert await reopened.archived_event_ids(ROOM) == {
        "$ev1:rijk.example",
        "$ev2:rijk.example",
        "$ev3:rijk.example",
    }
    assert await reopened.sync_token() == "s3"
    assert (await reopened.verify()).ok


async def test_pagination_tokens_are_stable_and_complete(archive: Archive) -> None:
    await archive.ingest([message(i, f"m {i}") for i in range(25)])
    seen: list[str] = []
    token: str | None = None
    while True:
        page, token = await archive.room_events(ARCHIVIST, ROOM, token, 7)
        seen += [e.event_id for e in page]
        if token is None:
            break
    assert seen == [f"$ev{i}:rijk.example" for i in range(25)]
    page_a, token_a = await archive.room_events(ARCHIVIST, ROOM, None, 10)
    await archive.ingest([message(100, "later")])
    page_b, token_b = await archive.room_events(ARCHIVIST, ROOM, None, 10)
    assert token_a == token_b
    assert [e.event_id for e in page_a] == [e.event_id for e in page_b]


async def test_redaction_edit_and_reaction_are_linked_and_original_text_kept(
    archive: Archive,
) -> None:
    original = message(1, "het oorspronkelijke besluit")
    edit = message(
        2,
        "* het gewijzigde besluit",
        content={
            "msgtype": "m.text",
            "body": "* het gewijzigde besluit",
            "m.new_content": {"msgtype": "m.text", "body": "het gewijzigde besluit"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id},
        },
    )
    reaction = message(
        3,
        "",
        type="m.reaction",
        content={
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": original.event_id,
                "key": "👍",
            }
        },
    )
    redaction = message(
        4,
        "",
        type="m.room.redaction",
        content={"reason": "per ongeluk"},
        redacts=original.event_id,
    )
    await archive.ingest([original, edit, reaction, redaction])
    stored = await archive.get_event(ARCHIVIST, original.event_id)
    assert stored.content == {"msgtype": "m.text", "body": "het oorspronkelijke besluit"}
    assert stored.redacted_by == redaction.event_id
    assert stored.edits == [edit.event_id]
    assert stored.reactions == [reaction.event_id]
    edit_stored = await archive.get_event(ARCHIVIST, edit.event_id)
    assert edit_stored.relates_to == {"rel_type": "m.replace", "event_id": original.event_id}
    assert (await archive.verify()).ok


async def test_state_events_and_every_type_are_archived(archive: Archive) -> None:
    name = message(1, "", type="m.room.name", state_key="", content={"name": "Crisisoverleg"})
    member = message(
        2,
        "",
        type="m.room.member",
        state_key=ADVISEUR,
        content={"membership": "join", "displayname": "Adviseur"},
        decryption="plaintext",
        encrypted=None,
    )
    custom = message(3, "", type="nl.rijk.custom", content={"anything": [1, 2, {"x": None}]})
    assert (await archive.ingest([name, member, custom])).inserted == 3
    stored = await archive.get_event(ARCHIVIST, member.event_id)
    assert (stored.type, stored.state_key, stored.decryption) == (
        "m.room.member",
        ADVISEUR,
        "plaintext",
    )
    assert (await archive.get_event(ARCHIVIST, custom.event_id)).content == {
        "anything": [1, 2, {"x": None}]
    }


async def test_late_decryption_is_appended_and_linked(archive: Archive) -> None:
    locked = message(
        1,
        "",
        decryption="undecryptable",
        content={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAxyz", "session_id": "S1"},
        session_id="S1",
    )
    other = replace(message(2, "", decryption="undecryptable"), session_id="S2")
    await archive.ingest([locked, other, message(3, "leesbaar")])
    assert await archive.undecryptable_count() == 2
    assert await archive.undecryptable_session_ids() == {"S1", "S2"}
    assert await archive.undecryptable_session_ids(OTHER_ROOM) == set()
    pending = await archive.pending_by_session("S1")
    assert [e.event_id for e in pending] == [locked.event_id]
    assert pending[0].content == locked.content

    added = await archive.add_decryption(
        locked.event_id, {"msgtype": "m.text", "body": "later ontsleuteld"}, "DEVB", "curveB"
    )
    assert added is True
    assert await archive.add_decryption(locked.event_id, {"body": "x"}, "D", "K") is False
    assert await archive.add_decryption("$unknown:x", {"body": "x"}, "D", "K") is False
    assert await archive.undecryptable_session_ids() == {"S2"}
    assert await archive.undecryptable_count() == 1
    stored = await archive.get_event(ARCHIVIST, locked.event_id)
    assert stored.content == {"msgtype": "m.text", "body": "later ontsleuteld"}
    assert (stored.decryption, stored.late_decryption) == ("decrypted", True)
    assert (stored.sender_device, stored.sender_key) == ("DEVB", "curveB")
    hits = await archive.search(ARCHIVIST, "ontsleuteld")
    assert [h.event_id for h in hits] == [locked.event_id]
    assert (await archive.verify()).ok


async def test_withheld_keys_and_room_metadata_are_recorded(archive: Archive) -> None:
    await archive.ingest([message(1, "hallo")])
    await archive.record_withheld(ROOM, "S9", MINISTER, "m.unverified", "device not verified")
    await archive.set_room_info(ROOM, name="Beleidsoverleg", members=[MINISTER, ADVISEUR])
    await archive.record_room_left(ROOM, "kicked by @admin:rijk.example")
    rooms = await archive.list_rooms(ARCHIVIST)
    assert len(rooms) == 1
    room = rooms[0]
    assert (room.room_id, room.name, room.members) == (ROOM, "Beleidsoverleg", [ADVISEUR, MINISTER])
    assert (room.event_count, room.first_ts, room.last_ts) == (1, BASE_TS + 1000, BASE_TS + 1000)
    assert room.left_reason == "kicked by @admin:rijk.example"
    report = await archive.verify()
    assert report.ok
    assert report.rooms[ROOM].entries == 3


async def test_attachment_round_trip_and_failed_download_recorded(archive: Archive) -> None:
    await archive.ingest([message(1, "zie bijlage"), message(2, "tweede bijlage")])
    data = b"%PDF-1.7 vertrouwelijk memo " * 100
    await archive.store_attachment(
        "$ev1:rijk.example", ROOM, data, "memo.pdf", "application/pdf", True
    )
    await archive.store_attachment(
        "$ev1:rijk.example", ROOM, b"other", "x.pdf", "application/pdf", True
    )  # second store of a stored attachment is a no-op
    assert await archive.get_attachment(ARCHIVIST, "$ev1:rijk.example") == (
        data,
        "memo.pdf",
        "application/pdf",
    )
    await archive.store_attachment(
        "$ev2:rijk.example", ROOM, b"", "kapot.png", "image/png", None, error="404 from media repo"
    )
    stored = await archive.get_event(ARCHIVIST, "$ev2:rijk.example")
    assert stored.has_attachment is False
    status = await archive.attachment_status(ARCHIVIST, "$ev2:rijk.example")
    assert status == {
        "filename": "kapot.png",
        "mimetype": "image/png",
        "size": 0,
        "sha256_ok": None,
        "error": "404 from media repo",
        "stored": False,
    }
    assert (await archive.attachment_status(ARCHIVIST, "$ev1:rijk.example"))["stored"] is True
    with pytest.raises(UnknownEventError):
        await archive.get_attachment(ARCHIVIST, "$ev2:rijk.example")
    assert (await archive.get_event(ARCHIVIST, "$ev1:rijk.example")).has_attachment
    with pytest.raises(UnknownEventError):
        await archive.store_attachment("$nope:x", ROOM, b"x", "a", "b", True)
    assert (await archive.verify()).ok


async def test_unknown_reads_raise_typed_errors(archive: Archive) -> None:
    with pytest.raises(UnknownEventError):
        await archive.get_event(ARCHIVIST, "$missing:rijk.example")
    with pytest.raises(UnknownEventError):
        await archive.room_events(ARCHIVIST, "!missing:rijk.example", None, 10)
    assert await archive.archived_event_ids("!missing:rijk.example") == set()


async def test_event_records_from_many_rooms_in_one_batch(archive: Archive) -> None:
    batch: list[EventRecord] = []
    for i in range(40):
        room = ROOM if i % 2 else OTHER_ROOM
        batch.append(message(i, f"bericht {i}", room=room))
    assert (await archive.ingest(batch)).inserted == 40
    report = await archive.verify()
    assert report.ok
    assert {r: v.entries for r, v in report.rooms.items()} == {ROOM: 20, OTHER_ROOM: 20}


async def test_empty_batch_only_moves_the_sync_position(archive: Archive) -> None:
    result = await archive.ingest([], sync_token="s9")
    assert (result.inserted, result.duplicates, result.rejected) == (0, 0, [])
    assert await archive.sync_token() == "s9"


async def test_withheld_without_room_is_rejected(archive: Archive) -> None:
    from archiver_bot.archive import InvalidEventError

    with pytest.raises(InvalidEventError, match="room_id"):
        await archive.record_withheld("", "S1", MINISTER, "m.unavailable", None)


async def test_a_closed_archive_refuses_reads_and_writes(open_store: OpenArchive) -> None:
    from archiver_bot.archive import ArchiveError

    archive = await open_store()
    await archive.close()
    with pytest.raises(ArchiveError, match="closed"):
        await archive.ingest([message(1, "te laat")])
    with pytest.raises(ArchiveError, match="closed"):
        await archive.sync_token()
    await archive.close()  # idempotent


async def test_several_events_by_id_in_one_logged_read(archive: Archive) -> None:
    await archive.ingest([message(i, f"bericht {i}") for i in range(5)])
    found = await archive.get_events(
        ARCHIVIST, ["$ev1:rijk.example", "$ev3:rijk.example", "$nope:x", "$ev1:rijk.example"]
    )
    assert set(found) == {"$ev1:rijk.example", "$ev3:rijk.example"}
    assert found["$ev3:rijk.example"].content == {"msgtype": "m.text", "body": "bericht 3"}
    log = await archive.access_log(ARCHIVIST, limit=2)
    assert log[1].action == "get_events"
    assert log[1].details["events"] == ["$ev1:rijk.example", "$ev3:rijk.example", "$nope:x"]
