"""Every read is logged (who, what, when, why); the migrated schema matches the model."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from archiver_bot.archive import Actor, Archive, ArchiveError
from archiver_bot.archive.engine import VERSION_TABLE
from archiver_bot.archive.schema import metadata

from .conftest import ROOM, Backend, OpenArchive, message


async def test_every_read_is_logged_with_actor_and_purpose(archive: Archive) -> None:
    await archive.ingest([message(1, "hallo")])
    await archive.store_attachment("$ev1:rijk.example", ROOM, b"data", "f.txt", "text/plain", True)
    alice = Actor("@alice:rijk.example", "Woo-verzoek 2026-17")
    bob = Actor("@bob:rijk.example", "intern onderzoek")
    await archive.list_rooms(alice)
    await archive.room_events(alice, ROOM, None, 10)
    await archive.get_event(bob, "$ev1:rijk.example")
    await archive.get_attachment(bob, "$ev1:rijk.example")
    await archive.search(alice, "hallo", room=ROOM)
    entries = await archive.access_log(bob, limit=10)
    assert [(e.user_id, e.action) for e in entries] == [
        ("@bob:rijk.example", "access_log"),
        ("@alice:rijk.example", "search"),
        ("@bob:rijk.example", "get_attachment"),
        ("@bob:rijk.example", "get_event"),
        ("@alice:rijk.example", "room_events"),
        ("@alice:rijk.example", "list_rooms"),
    ]
    assert entries[3].details == {"event": "$ev1:rijk.example"}
    assert entries[3].purpose == "intern onderzoek"
    assert entries[4].details["room"] == ROOM
    assert all(e.ts > 0 for e in entries)
    only_alice = await archive.access_log(bob, limit=10, user_id="@alice:rijk.example")
    assert {e.user_id for e in only_alice} == {"@alice:rijk.example"}
    report = await archive.verify()
    assert report.access_log is not None
    assert (report.access_log.ok, report.access_log.entries) == (True, 7)


async def test_reads_without_purpose_are_refused_and_not_served(archive: Archive) -> None:
    await archive.ingest([message(1, "hallo")])
    with pytest.raises(ArchiveError, match="purpose"):
        await archive.get_event(Actor("@alice:rijk.example", "  "), "$ev1:rijk.example")
    with pytest.raises(ArchiveError, match="user id"):
        await archive.search(Actor("", "x"), "hallo")


async def test_migrated_schema_matches_the_model_and_reopen_is_idempotent(
    backend: Backend, open_store: OpenArchive
) -> None:
    first = await open_store()
    await first.close()
    await open_store()
    engine = create_async_engine(backend.url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"version_table": VERSION_TABLE}),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_downgrade_and_upgrade_keep_data_and_backfill_room_stats(
    backend: Backend, open_store: OpenArchive
) -> None:
    from alembic import command

    from archiver_bot.archive.engine import _alembic_config

    archive = await open_store()
    await archive.ingest([message(1, "a"), message(2, "b"), message(3, "c", room="!x:y")])
    await archive.close()
    engine = create_async_engine(backend.url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0001"))
            await conn.commit()
    finally:
        await engine.dispose()
    reopened = await open_store()  # migrates 0001 -> head, recomputing the statistics
    rooms = {r.room_id: r for r in await reopened.list_rooms(Actor("@a:x", "migratietest"))}
    assert rooms[ROOM].event_count == 2
    assert rooms["!x:y"].event_count == 1
    assert rooms[ROOM].first_ts is not None
    assert (await reopened.verify()).ok
