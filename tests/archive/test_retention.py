"""Retention classes, legal hold and crypto-shredding that verify still accepts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archiver_bot.archive import (
    PERMANENT,
    Actor,
    ArchiveError,
    ArchiveKeyError,
    ArchivePaths,
    ContentDestroyedError,
    verify_archive,
)

from .conftest import MINISTER, OTHER_ROOM, ROOM, Backend, OpenArchive, message

READER = Actor("@archivaris:rijk.example", "retentiecontrole")
Y2020 = 1_577_836_800_000  # 2020-01-01
Y2026 = 1_767_225_600_000
YEAR_2035 = 2_051_222_400_000  # 2035-01-01
YEAR_2040 = 2_208_988_800_000  # 2040-01-01


async def test_rooms_with_a_key_official_are_kept_forever_by_default(
    open_store: OpenArchive,
) -> None:
    archive = await open_store(default_retention="10y")
    await archive.ingest([message(1, "a"), message(2, "b", room=OTHER_ROOM)])
    await archive.set_room_info(ROOM, key_officials=[MINISTER])
    rooms = {r.room_id: r for r in await archive.list_rooms(READER)}
    assert rooms[ROOM].retention == PERMANENT
    assert rooms[ROOM].key_officials == [MINISTER]
    assert rooms[OTHER_ROOM].retention == "10y"
    await archive.set_retention(OTHER_ROOM, "7y")
    with pytest.raises(ArchiveError, match="unknown retention class"):
        await archive.set_retention(OTHER_ROOM, "forever-ish")
    rooms = {r.room_id: r for r in await archive.list_rooms(READER)}
    assert rooms[OTHER_ROOM].retention == "7y"
    assert (await archive.destroy_expired(YEAR_2040 * 10)).destroyed_keys == 1  # only 7y room


async def test_destruction_shreds_content_keeps_chain_valid_and_is_final(
    backend: Backend, open_store: OpenArchive, tmp_path: Path
) -> None:
    archive = await open_store(default_retention="10y")
    old = [message(i, f"oude vertrouwelijke notitie {i}", ts=Y2020 + i) for i in range(1, 4)]
    new = [message(10, "recente notitie", ts=Y2026)]
    await archive.ingest([*old, *new])
    await archive.store_attachment(
        old[0].event_id, ROOM, b"oude bijlage", "a.txt", "text/plain", True
    )
    backup = tmp_path / "backup"
    if backend.name == "sqlite":
        await archive.close()
        shutil.copytree(backend.paths.root, backup)  # an old backup, keys included
        archive = await open_store(default_retention="10y")

    assert (await archive.destroy_expired(Y2026)).destroyed_keys == 0  # not yet expired
    report = await archive.destroy_expired(YEAR_2035)  # 2020 + 1 + 10 <= 2035 < 2026 + 1 + 10
    assert (report.destroyed_events, report.destroyed_keys) == (3, 1)
    gone = await archive.get_event(READER, old[0].event_id)
    assert (gone.content, gone.destroyed, gone.sender) == (None, True, MINISTER)
    with pytest.raises(ContentDestroyedError):
        await archive.get_attachment(READER, old[0].event_id)
    assert await archive.search(READER, "vertrouwelijke") == []
    assert [h.event_id for h in await archive.search(READER, "notitie")] == [new[0].event_id]
    assert (await archive.get_event(READER, new[0].event_id)).content is not None
    assert (await archive.verify()).ok
    rows = await backend.sql(
        "SELECT count(*) FROM archive_keys WHERE wrapped IS NULL AND destroyed_ts IS NOT NULL"
    )
    assert rows[0][0] == 1
    await archive.close()
    assert (await verify_archive(backend.paths, backend.url)).ok

    if backend.name == "sqlite":
        # The old backup still holds the wrapped data key, but the keyring secret is gone
        # from the live key store: restoring the backup database with today's keys fails.
        restored = ArchivePaths.for_data_dir(tmp_path / "restored")
        shutil.copytree(backup, restored.root)
        shutil.rmtree(restored.root / "keyring")
        shutil.copytree(backend.paths.keyring, restored.root / "keyring")
        shutil.copy(backend.paths.kek, restored.kek)
        from archiver_bot.archive import open_archive

        stale = await open_archive(restored)
        try:
            with pytest.raises(ArchiveKeyError, match="missing"):
                await stale.get_event(READER, old[0].event_id)
            assert (await stale.get_event(READER, new[0].event_id)).content is not None
        finally:
            await stale.close()


async def test_legal_hold_blocks_destruction_until_lifted(open_store: OpenArchive) -> None:
    archive = await open_store(default_retention="1y")
    await archive.ingest([message(1, "onder onderzoek", ts=Y2020)])
    await archive.set_legal_hold(ROOM, True, "parlementaire enquête")
    report = await archive.destroy_expired(YEAR_2040)
    assert (report.destroyed_keys, report.held_rooms) == (0, [ROOM])
    assert (await archive.get_event(READER, "$ev1:rijk.example")).content is not None
    rooms = await archive.list_rooms(READER)
    assert rooms[0].legal_hold is True
    await archive.set_legal_hold(ROOM, False, "enquête afgerond")
    assert (await archive.destroy_expired(YEAR_2040)).destroyed_keys == 1
    assert (await archive.get_event(READER, "$ev1:rijk.example")).destroyed
    assert (await archive.verify()).ok


async def test_permanent_rooms_are_never_destroyed(open_store: OpenArchive) -> None:
    archive = await open_store(default_retention=PERMANENT)
    await archive.ingest([message(1, "voor altijd", ts=Y2020)])
    assert (await archive.destroy_expired(YEAR_2040 * 100)).destroyed_keys == 0


async def test_nulling_content_without_destruction_record_is_detected(
    backend: Backend, open_store: OpenArchive
) -> None:
    archive = await open_store()
    await archive.ingest([message(1, "a"), message(2, "b")])
    await archive.close()
    await backend.sql(
        "UPDATE archive_records SET ciphertext = NULL WHERE uid = '$ev2:rijk.example'"
    )
    report = await verify_archive(backend.paths, backend.url)
    assert (report.rooms[ROOM].kind, report.rooms[ROOM].position) == ("modified", 2)
    assert "without a destruction record" in report.rooms[ROOM].detail


async def test_destroy_expired_command_runs_next_to_the_writer(
    backend: Backend, open_store: OpenArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from archiver_bot.archive.cli import destroy_expired_main

    writer = await open_store(default_retention="1y")
    await writer.ingest([message(1, "heel oud bericht", ts=Y2020)])
    args = ["--data-dir", str(backend.paths.root.parent), "--database-url", backend.url]
    assert await asyncio.to_thread(destroy_expired_main, args) == 0
    assert "destroyed 1 events under 1 data keys" in capsys.readouterr().out
    assert (await writer.get_event(READER, "$ev1:rijk.example")).destroyed
    # the writer keeps appending to the same chain afterwards
    await writer.ingest([message(2, "nieuw bericht")])
    await writer.close()
    assert (await verify_archive(backend.paths, backend.url)).ok
