"""One writer at a time; readers (review, audit) next to it never break the chain rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver_bot.archive import (
    Actor,
    ArchiveBusyError,
    ArchiveError,
    ArchivePaths,
    open_archive,
    verify_archive,
)

from .conftest import ROOM, Backend, OpenArchive, message

REVIEWER = Actor("@archivaris:rijk.example", "Woo-verzoek")


async def test_a_second_writer_is_refused_until_the_first_closes(
    open_store: OpenArchive,
) -> None:
    first = await open_store()
    with pytest.raises(ArchiveBusyError, match="another archiver process"):
        await open_store()
    await first.close()
    second = await open_store()
    assert second.role == "writer"


async def test_reader_next_to_writer_and_while_writer_is_stopped(
    backend: Backend, open_store: OpenArchive
) -> None:
    writer = await open_store()
    await writer.ingest([message(1, "eerste")], "s1")
    reader = await open_store(role="reader")
    assert (await reader.get_event(REVIEWER, "$ev1:rijk.example")).content is not None
    await writer.ingest([message(2, "tweede")], "s2")
    assert await reader.archived_event_ids(ROOM) == {"$ev1:rijk.example", "$ev2:rijk.example"}
    await writer.close()

    # the writer is stopped: the reader still reads (logged) and sets a legal hold
    await reader.search(REVIEWER, "tweede")
    await reader.set_legal_hold(ROOM, True, "onderzoek")
    await reader.close()
    assert (await verify_archive(backend.paths, backend.url)).ok

    restarted = await open_store()  # does not mistake the reader's records for tampering
    await restarted.ingest([message(3, "derde")], "s3")
    rooms = await restarted.list_rooms(REVIEWER)
    assert rooms[0].legal_hold is True
    await restarted.close()
    report = await verify_archive(backend.paths, backend.url)
    assert report.ok
    assert report.access_log is not None
    assert report.access_log.entries == 3


async def test_a_reader_never_creates_an_archive_or_keys(tmp_path: Path) -> None:
    paths = ArchivePaths.for_data_dir(tmp_path)
    with pytest.raises(ArchiveError, match="no archive"):
        await open_archive(paths, role="reader")
    assert not paths.kek.exists()
    assert not paths.signing_key.exists()
