"""Checkpoints stay small and verification memory stays bounded as the archive ages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from archiver_bot.archive import ArchivePaths, open_archive, verify_archive
from archiver_bot.archive.verify import MAX_ANCHORS, _Anchors

from .conftest import OTHER_ROOM, ROOM, Backend, OpenArchive, message


async def test_interval_checkpoints_list_only_changed_rooms(
    backend: Backend, open_store: OpenArchive
) -> None:
    archive = await open_store(checkpoint_every=3)
    await archive.ingest([message(i, "a", room=OTHER_ROOM) for i in range(1, 4)])
    await archive.ingest([message(i, "b") for i in range(10, 15)])
    await archive.ingest([message(i, "c") for i in range(20, 24)])
    rows = await backend.sql("SELECT reason, payload FROM archive_checkpoints ORDER BY seq")
    intervals = [json.loads(bytes(p)) for reason, p in rows if reason == "interval"]
    assert intervals
    assert list(intervals[-1]["rooms"]) == [ROOM]
    assert intervals[-1]["full"] is False
    await archive.close()
    last = await backend.sql(
        "SELECT reason, payload FROM archive_checkpoints ORDER BY seq DESC LIMIT 1"
    )
    assert last[0][0] == "close"
    assert set(json.loads(bytes(last[0][1]))["rooms"]) == {ROOM, OTHER_ROOM}
    assert (await verify_archive(backend.paths, backend.url)).ok
    await backend.sql(
        "DELETE FROM archive_records WHERE seq = 9 AND room_pk = "
        "(SELECT pk FROM archive_rooms WHERE room_id = :r)",
        r=ROOM,
    )
    report = await verify_archive(backend.paths, backend.url)
    assert (report.rooms[ROOM].kind, report.rooms[ROOM].position) == ("missing", 9)


def test_verification_keeps_a_bounded_number_of_anchors() -> None:
    anchors = _Anchors()
    for seq in range(1, 20_001):
        anchors.add(seq, seq.to_bytes(32, "big"))
    assert len(anchors.hashes) <= MAX_ANCHORS
    assert anchors.hashes[20_000] == (20_000).to_bytes(32, "big")
    assert min(anchors.hashes) < 1000  # old positions stay (sparsely) covered


async def test_a_deliberately_new_database_starts_cleanly_a_swapped_one_does_not(
    tmp_path: Path,
) -> None:
    paths = ArchivePaths.for_data_dir(tmp_path / "a")
    first = await open_archive(paths)
    await first.ingest([message(1, "eerste archief")])
    await first.close()
    other_paths = ArchivePaths.for_data_dir(tmp_path / "b")
    other = await open_archive(other_paths)
    await other.close()

    # a database from elsewhere is not this archive
    for suffix in ("", "-wal", "-shm"):
        source = other_paths.database.with_name(other_paths.database.name + suffix)
        target = paths.database.with_name(paths.database.name + suffix)
        if source.exists():
            shutil.copy(source, target)
        else:
            target.unlink(missing_ok=True)
    report = await verify_archive(paths)
    assert any("not the archive recorded" in p for p in report.problems)

    # an operator who deliberately starts over (database removed, keys kept) can do so
    for suffix in ("", "-wal", "-shm"):
        paths.database.with_name(paths.database.name + suffix).unlink(missing_ok=True)
    fresh = await open_archive(paths)
    await fresh.ingest([message(2, "nieuw archief")])
    await fresh.close()
    assert (await verify_archive(paths)).ok
