"""A late decryption with an imported room key carries its provenance: chained (a change
of the record shows in verify), shown on the event, counted by verify; the access log
records the import. Archives without imported keys verify exactly as before."""

from __future__ import annotations

import io

import pytest

from archiver_bot.archive import Actor, verify_archive
from archiver_bot.archive.cli import print_report

from .conftest import ROOM, Backend, OpenArchive, message

ARCHIVIST = Actor("@archivaris:rijk.example", "herstel na sleutelrace")
PROVENANCE = {
    "imported_by": "@archivaris:rijk.example",
    "imported_at": 1_767_225_700_000,
    "file_sha256": "ab" * 32,
    "via": "cli",
}


async def _two_late(open_store: OpenArchive) -> None:
    archive = await open_store()
    await archive.ingest([
        message(1, "", decryption="undecryptable"),
        message(2, "", decryption="undecryptable"),
        message(3, "gewoon ontsleuteld"),
    ])
    assert await archive.add_decryption(
        "$ev1:rijk.example", {"msgtype": "m.text", "body": "geimporteerde sleutel opent dit"},
        "DEVA", "curveA", event_type="m.room.message", imported=PROVENANCE,
    )
    assert await archive.add_decryption(
        "$ev2:rijk.example", {"msgtype": "m.text", "body": "via olm later"}, "DEVA", "curveA",
    )
    await archive.record_key_import(ARCHIVIST, {"file_sha256": "ab" * 32, "keys_used": 1})
    events = {e.event_id: e for e in (await archive.room_events(ARCHIVIST, ROOM))[0]}
    imported = events["$ev1:rijk.example"]
    assert imported.decryption == "decrypted"
    assert imported.late_decryption
    assert imported.imported_key == PROVENANCE
    assert events["$ev2:rijk.example"].late_decryption
    assert events["$ev2:rijk.example"].imported_key is None
    assert events["$ev3:rijk.example"].imported_key is None
    hits = await archive.search(ARCHIVIST, "geimporteerde sleutel")
    assert [h.event_id for h in hits] == ["$ev1:rijk.example"]
    assert hits[0].event.imported_key == PROVENANCE
    log = await archive.access_log(ARCHIVIST)
    entry = next(e for e in log if e.action == "import_keys")
    assert entry.user_id == ARCHIVIST.user_id
    assert entry.details["file_sha256"] == "ab" * 32
    await archive.close()


async def test_imported_key_provenance_is_shown_counted_and_verified(
    backend: Backend, open_store: OpenArchive
) -> None:
    await _two_late(open_store)
    report = await verify_archive(backend.paths, backend.url)
    assert report.ok, report
    assert report.rooms[ROOM].imported_decryptions == 1
    out = io.StringIO()
    print_report(report, out)
    assert "1 decrypted with imported keys" in out.getvalue()


@pytest.mark.parametrize("change", ["decryption='decrypted'", "ciphertext=NULL"])
async def test_hiding_the_imported_provenance_breaks_the_chain(
    backend: Backend, open_store: OpenArchive, change: str
) -> None:
    await _two_late(open_store)
    await backend.sql(
        f"UPDATE archive_records SET {change} WHERE uid = 'decryption:$ev1:rijk.example'"
    )
    report = await verify_archive(backend.paths, backend.url)
    assert not report.ok
    assert report.rooms[ROOM].kind == "modified"
