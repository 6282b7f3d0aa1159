"""Encryption at rest: no message text in the raw database, AAD binding, key errors."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
from cryptography.exceptions import InvalidTag

from archiver_bot.archive import (
    Actor,
    Archive,
    ArchiveIntegrityError,
    ArchiveKeyError,
)
from archiver_bot.archive.keys import make_aad, new_dek, seal, unseal

from .conftest import ROOM, Backend, OpenArchive, message

# Words that appear only inside archived content, names, filenames, reasons and searches.
SECRET_WORDS = [
    "Zuiderzeewerken",
    "geheimberaad",
    "oorlogsschepen",
    "Rijksvoorlichting",
    "onderzeeboot",
    "kroonjuwelen",
    "Ministerstoren",
    "bijlagememo",
    "ontslagbrief",
    "inzageverzoek",
    "withheldreden",
    "bewaarplicht",
]
ARCHIVIST = Actor("@archivaris:rijk.example", "inzageverzoek dossier 7")


async def _fill(archive: Archive) -> None:
    await archive.ingest(
        [
            message(1, "Het geheimberaad over de Zuiderzeewerken is verplaatst"),
            message(2, "De oorlogsschepen en de onderzeeboot vertrekken morgen"),
            message(3, "", type="m.room.name", state_key="", content={"name": "Kroonjuwelen"}),
            message(4, "Rijksvoorlichting: geen commentaar", decryption="plaintext"),
            message(5, "", decryption="undecryptable", session_id="S5"),
        ],
        sync_token="s1",
    )
    await archive.add_decryption("$ev5:rijk.example", {"body": "ontslagbrief"}, "D", "K")
    await archive.set_room_info(ROOM, name="Ministerstoren", members=["@minister:rijk.example"])
    await archive.store_attachment(
        "$ev1:rijk.example", ROOM, b"bijlagememo inhoud", "bijlagememo.pdf", "x/y", True
    )
    await archive.record_withheld(
        ROOM, "S6", "@minister:rijk.example", "m.unverified", "withheldreden"
    )
    await archive.set_legal_hold(ROOM, True, "bewaarplicht onderzoek")
    await archive.search(ARCHIVIST, "Zuiderzeewerken geheimberaad")
    hits = await archive.search(ARCHIVIST, "oorlogsschepen")
    assert len(hits) == 1  # the text is there for an authorised reader


def _assert_no_words(blob: bytes, where: str) -> None:
    lowered = blob.lower()
    found = [w for w in SECRET_WORDS if w.lower().encode() in lowered]
    assert not found, f"plaintext {found} found in {where}"
    # positive control: the metadata we do keep in the clear is visible to this scan
    assert b"@minister:rijk.example" in blob, f"scan of {where} sees nothing at all?"


async def test_raw_database_contains_none_of_the_archived_words(
    backend: Backend, open_store: OpenArchive
) -> None:
    archive = await open_store()
    await _fill(archive)
    if backend.name == "sqlite":
        # the files while open (most pages still in the WAL), then the database after close
        files = b""
        for suffix in ("", "-wal", "-shm"):
            path = backend.paths.database.with_name(backend.paths.database.name + suffix)
            if path.exists():
                files += path.read_bytes()
        _assert_no_words(files, "archive.db + WAL + shm while open")
        await archive.close()
        _assert_no_words(backend.paths.database.read_bytes(), "archive.db after close")
        return
    await archive.close()
    assert backend.pg_database is not None
    pg_dump = shutil.which("pg_dump") or "/usr/bin/pg_dump"
    dump = subprocess.run(
        [pg_dump, "-h", "127.0.0.1", "-U", "postgres", "-d", backend.pg_database, "--data-only"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if dump.returncode == 0:
        _assert_no_words(dump.stdout, "pg_dump")
        return
    # client/server version mismatch: dump every table as text through SQL instead
    tables = await backend.sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'archive%'"
    )
    text_dump = b""
    for (table,) in tables:
        for row in await backend.sql(f'SELECT * FROM "{table}"'):
            text_dump += repr(tuple(row)).encode() + b"\n"
    _assert_no_words(text_dump, "SQL dump")


async def test_keys_are_owner_only_files_outside_the_database(
    backend: Backend, archive: Archive
) -> None:
    await archive.ingest([message(1, "x")])
    private = [backend.paths.kek, backend.paths.signing_key, *backend.paths.keyring.iterdir()]
    if backend.name == "sqlite":
        private += [backend.paths.database, backend.paths.database.with_suffix(".db-wal")]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(backend.paths.root.stat().st_mode) == 0o700
    kek = backend.paths.kek.read_text()
    rows = await backend.sql("SELECT value FROM archive_meta")
    assert all(kek.split(":", 1)[1] not in str(v) for (v,) in rows)


async def test_ciphertext_moved_to_another_row_fails_to_decrypt(
    backend: Backend, archive: Archive
) -> None:
    await archive.ingest([message(1, "eerste bericht"), message(2, "tweede bericht")])
    await backend.sql(
        "UPDATE archive_records SET ciphertext = "
        "(SELECT ciphertext FROM archive_records WHERE uid = :a), "
        "digest = (SELECT digest FROM archive_records WHERE uid = :a) WHERE uid = :b",
        a="$ev1:rijk.example",
        b="$ev2:rijk.example",
    )
    archive._ctx.deks.clear()  # noqa: SLF001 - no cached plaintext involved anyway
    reader = Actor("@archivaris:rijk.example", "test")
    assert (await archive.get_event(reader, "$ev1:rijk.example")).content is not None
    with pytest.raises(ArchiveIntegrityError, match="does not authenticate"):
        await archive.get_event(reader, "$ev2:rijk.example")
    report = await archive.verify()
    assert report.rooms[ROOM].kind == "modified"
    assert report.rooms[ROOM].position == 2


def test_aad_binds_room_and_event_id() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(new_dek())
    blob = seal(aead, b"tekst", make_aad("event", "!a:x", "$1"))
    assert unseal(aead, blob, make_aad("event", "!a:x", "$1")) == b"tekst"
    for wrong in (make_aad("event", "!b:x", "$1"), make_aad("event", "!a:x", "$2")):
        with pytest.raises(InvalidTag):
            unseal(aead, blob, wrong)


async def test_wrong_kek_gives_a_clear_error(backend: Backend, open_store: OpenArchive) -> None:
    archive = await open_store()
    await archive.ingest([message(1, "hallo")])
    await archive.close()
    original = backend.paths.kek.read_bytes()
    backend.paths.kek.unlink()
    other = backend.paths.root / "other"
    from archiver_bot.archive.keys import FileKeyProvider

    FileKeyProvider(other / "kek.key", other / "keyring", create=True)
    shutil.copy(other / "kek.key", backend.paths.kek)
    with pytest.raises(ArchiveKeyError, match="does not match this archive"):
        await open_store()
    backend.paths.kek.unlink()
    with pytest.raises(ArchiveKeyError, match="is missing"):
        await open_store()
    assert not backend.paths.kek.exists(), "a missing KEK must never be silently replaced"
    backend.paths.kek.write_bytes(original)
    os.chmod(backend.paths.kek, 0o644)
    with pytest.raises(ArchiveKeyError, match="readable by its owner only"):
        await open_store()
    os.chmod(backend.paths.kek, 0o600)
    reopened = await open_store()
    reader = Actor("@archivaris:rijk.example", "test")
    assert (await reopened.get_event(reader, "$ev1:rijk.example")).content == {
        "msgtype": "m.text",
        "body": "hallo",
    }


async def test_wrong_signing_key_gives_a_clear_error(
    backend: Backend, open_store: OpenArchive
) -> None:
    archive = await open_store()
    await archive.close()
    backend.paths.signing_key.unlink()
    with pytest.raises(ArchiveKeyError, match="signing key .* is missing"):
        await open_store()
