"""Raw-database tampering of every kind is detected and named by verify and the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver_bot.archive import (
    ArchiveIntegrityError,
    verify_archive,
)
from archiver_bot.archive.chain import CHAIN_FIELDS, entry_hash
from archiver_bot.archive.cli import verify_main

from .conftest import OTHER_ROOM, ROOM, Backend, OpenArchive, message

Tamper = Callable[[Backend], Awaitable[None]]


async def _row(backend: Backend, seq: int) -> dict[str, Any]:
    rows = await backend.sql(
        "SELECT r.* FROM archive_records r JOIN archive_rooms m ON m.pk = r.room_pk "
        "WHERE m.room_id = :room AND r.seq = :seq",
        room=ROOM,
        seq=seq,
    )
    return dict(rows[0]._mapping)


async def _room_pk(backend: Backend) -> int:
    return int((await backend.sql("SELECT pk FROM archive_rooms WHERE room_id = :r", r=ROOM))[0][0])


async def _shift(backend: Backend, above: int, delta: int) -> None:
    """Renumber positions > above by delta (two steps: the unique index forbids overlaps)."""
    pk = await _room_pk(backend)
    await backend.sql(
        "UPDATE archive_records SET seq = -seq WHERE room_pk = :pk AND seq > :above",
        pk=pk,
        above=above,
    )
    await backend.sql(
        "UPDATE archive_records SET seq = -seq + :d WHERE room_pk = :pk AND seq < 0",
        pk=pk,
        d=delta,
    )


async def _insert_forged(backend: Backend, seq: int, prev_seq: int) -> None:
    """Insert a record with a *correct* hash linked to position prev_seq (a knowing attacker)."""
    row = await _row(backend, prev_seq)
    forged = dict(row)
    forged.update(uid="$forged:rijk.example", sender="@indringer:rijk.example", seq=seq)
    forged["pk"] = int((await backend.sql("SELECT max(pk) FROM archive_records"))[0][0]) + 1
    forged["prev_hash"] = row["hash"]
    forged["hash"] = entry_hash(row["hash"], ROOM, tuple(forged[f] for f in CHAIN_FIELDS))
    columns = ", ".join(forged)
    await backend.sql(
        f"INSERT INTO archive_records ({columns}) VALUES ({', '.join(':' + c for c in forged)})",
        **forged,
    )


async def modify_field(b: Backend) -> None:
    await b.sql(
        "UPDATE archive_records SET sender = '@indringer:rijk.example' "
        "WHERE room_pk = :pk AND seq = 4",
        pk=await _room_pk(b),
    )


async def modify_content(b: Backend) -> None:
    row = await _row(b, 6)
    broken = bytes(row["ciphertext"][:-1]) + bytes([row["ciphertext"][-1] ^ 1])
    await b.sql(
        "UPDATE archive_records SET ciphertext = :c WHERE room_pk = :pk AND seq = 6",
        c=broken,
        pk=await _room_pk(b),
    )


async def modify_and_rehash(b: Backend) -> None:
    row = await _row(b, 4)
    row["sender"] = "@indringer:rijk.example"
    new_hash = entry_hash(row["prev_hash"], ROOM, tuple(row[f] for f in CHAIN_FIELDS))
    await b.sql(
        "UPDATE archive_records SET sender = :s, hash = :h WHERE pk = :pk",
        s=row["sender"],
        h=new_hash,
        pk=row["pk"],
    )


async def delete_middle(b: Backend) -> None:
    await b.sql("DELETE FROM archive_records WHERE room_pk = :pk AND seq = 5", pk=await _room_pk(b))


async def delete_and_renumber(b: Backend) -> None:
    await delete_middle(b)
    await _shift(b, 5, -1)


async def delete_tail(b: Backend) -> None:
    await b.sql(
        "DELETE FROM archive_records WHERE room_pk = :pk AND seq = 10", pk=await _room_pk(b)
    )


async def insert_middle(b: Backend) -> None:
    await _shift(b, 5, +1)
    await _insert_forged(b, seq=6, prev_seq=5)


async def insert_after_close(b: Backend) -> None:
    await _insert_forged(b, seq=11, prev_seq=10)
    row = await _row(b, 11)
    await b.sql(
        "UPDATE archive_rooms SET head_seq = 11, head_hash = :h WHERE room_id = :r",
        h=row["hash"],
        r=ROOM,
    )


async def reorder(b: Backend) -> None:
    pk = await _room_pk(b)
    await b.sql("UPDATE archive_records SET seq = -1 WHERE room_pk = :pk AND seq = 3", pk=pk)
    await b.sql("UPDATE archive_records SET seq = 3 WHERE room_pk = :pk AND seq = 4", pk=pk)
    await b.sql("UPDATE archive_records SET seq = 4 WHERE room_pk = :pk AND seq = -1", pk=pk)


async def bad_signature(b: Backend) -> None:
    await b.sql(
        "UPDATE archive_checkpoints SET signature = :s "
        "WHERE seq = (SELECT max(seq) FROM archive_checkpoints)",
        s=bytes(64),
    )


async def resigned_by_attacker(b: Backend) -> None:
    rows = await b.sql("SELECT seq, payload FROM archive_checkpoints ORDER BY seq DESC")
    seq, payload = rows[0]
    forged = bytes(payload).replace(b'"reason":"close"', b'"reason":"interval"')
    await b.sql(
        "UPDATE archive_checkpoints SET payload = :p, signature = :s WHERE seq = :seq",
        p=forged,
        s=Ed25519PrivateKey.generate().sign(forged),
        seq=seq,
    )


async def delete_room(b: Backend) -> None:
    pk = await _room_pk(b)
    await b.sql("DELETE FROM archive_records WHERE room_pk = :pk", pk=pk)
    await b.sql("DELETE FROM archive_rooms WHERE pk = :pk", pk=pk)


# (tamper, kind, position, the next start refuses: the signed closing heads changed)
CASES: list[tuple[Tamper, str, int, bool]] = [
    (modify_field, "modified", 4, False),
    (modify_content, "modified", 6, False),
    (modify_and_rehash, "modified", 4, False),
    (delete_middle, "missing", 5, False),
    (delete_and_renumber, "missing", 5, True),
    (delete_tail, "missing", 10, True),
    (insert_middle, "inserted", 6, True),
    (insert_after_close, "inserted", 11, True),
    (reorder, "reordered", 3, False),
    (bad_signature, "bad_signature", 10, True),
    (resigned_by_attacker, "bad_signature", 10, True),
    (delete_room, "missing", 1, True),
]


async def _archive_two_rooms(open_store: OpenArchive) -> None:
    archive = await open_store()
    await archive.ingest([message(i, f"bericht {i}") for i in range(1, 11)], "s1")
    await archive.ingest([message(i, f"ander {i}", room=OTHER_ROOM) for i in range(20, 23)])
    assert (await archive.verify()).ok
    await archive.close()


@pytest.mark.parametrize(
    ("tamper", "kind", "position", "refuses_start"), CASES, ids=[c[0].__name__ for c in CASES]
)
async def test_tampering_is_detected_and_named(
    backend: Backend,
    open_store: OpenArchive,
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
    kind: str,
    position: int,
    refuses_start: bool,
) -> None:
    await _archive_two_rooms(open_store)
    await tamper(backend)

    report = await verify_archive(backend.paths, backend.url)
    assert not report.ok
    room = report.rooms[ROOM]
    assert (room.ok, room.kind, room.position) == (False, kind, position), room
    if kind != "bad_signature":
        assert report.rooms[OTHER_ROOM].ok, "an untouched room stays OK"

    code = await asyncio.to_thread(
        verify_main, ["--data-dir", str(backend.paths.root.parent), "--database-url", backend.url]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert f"BROKEN  {ROOM}  position {position}: {kind}" in out
    assert "archive verification FAILED" in out

    if refuses_start:
        with pytest.raises(ArchiveIntegrityError, match="changed while the archiver was stopped"):
            await open_store()
    else:
        # a break inside the chain stays visible after restarts and new checkpoints
        archive = await open_store()
        await archive.ingest([message(50, "na herstart")])
        await archive.close()
        report = await verify_archive(backend.paths, backend.url)
        assert (report.rooms[ROOM].kind, report.rooms[ROOM].position) == (kind, position)


async def test_clean_archive_verifies_with_exit_zero_and_room_filter(
    backend: Backend, open_store: OpenArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    await _archive_two_rooms(open_store)
    data_dir = str(backend.paths.root.parent)
    assert (
        await asyncio.to_thread(
            verify_main, ["--data-dir", data_dir, "--database-url", backend.url]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"OK      {ROOM}  10 entries" in out
    assert f"OK      {OTHER_ROOM}  3 entries" in out
    assert "archive verified: OK" in out
    await modify_field(backend)
    args = ["--data-dir", data_dir, "--database-url", backend.url, "--room", OTHER_ROOM]
    assert await asyncio.to_thread(verify_main, args) == 0
    assert ROOM + " " not in capsys.readouterr().out
    assert await asyncio.to_thread(verify_main, [*args[:-1], ROOM]) == 1


async def test_verify_uses_an_exported_public_key_only(
    backend: Backend, open_store: OpenArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archiver_bot.archive.cli import export_public_key_main

    await _archive_two_rooms(open_store)
    assert (
        await asyncio.to_thread(
            export_public_key_main, ["--data-dir", str(backend.paths.root.parent)]
        )
        == 0
    )
    pem = capsys.readouterr().out
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "pub.pem").write_text(pem)
    auditor_dir = tmp_path / "auditor"
    auditor_dir.mkdir()
    # the auditor has the database and the public key, but no KEK and no signing key
    args = ["--data-dir", str(auditor_dir), "--database-url", backend.url]
    assert (
        await asyncio.to_thread(verify_main, [*args, "--public-key", str(tmp_path / "pub.pem")])
        == 0
    )
    other = Ed25519PrivateKey.generate().public_key()
    from archiver_bot.archive.keys import public_pem

    (tmp_path / "other.pem").write_text(public_pem(other))
    assert (
        await asyncio.to_thread(verify_main, [*args, "--public-key", str(tmp_path / "other.pem")])
        == 1
    )
    assert "bad_signature" in capsys.readouterr().out


async def test_removing_the_newest_checkpoints_is_detected(
    backend: Backend, open_store: OpenArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    await _archive_two_rooms(open_store)
    await backend.sql(
        "DELETE FROM archive_checkpoints WHERE seq = (SELECT max(seq) FROM archive_checkpoints)"
    )
    report = await verify_archive(backend.paths, backend.url)
    assert not report.ok
    assert any("recorded outside the database) is missing" in p for p in report.problems)
    args = ["--data-dir", str(backend.paths.root.parent), "--database-url", backend.url]
    assert await asyncio.to_thread(verify_main, args) == 1
    assert "PROBLEM checkpoint" in capsys.readouterr().out
    with pytest.raises(ArchiveIntegrityError, match="recorded outside the database"):
        await open_store()


async def test_access_log_tampering_is_detected(backend: Backend, open_store: OpenArchive) -> None:
    from archiver_bot.archive import Actor

    archive = await open_store()
    await archive.ingest([message(1, "hallo")])
    reader = Actor("@archivaris:rijk.example", "controle")
    for _ in range(3):
        await archive.get_event(reader, "$ev1:rijk.example")
    await archive.close()
    await backend.sql("UPDATE archive_access_log SET user_id = '@niemand:x' WHERE seq = 2")
    report = await verify_archive(backend.paths, backend.url)
    assert report.access_log is not None
    assert (report.access_log.ok, report.access_log.kind, report.access_log.position) == (
        False,
        "modified",
        2,
    )
    assert report.rooms[ROOM].ok


def _main_has_verify() -> bool:
    main = Path(__file__).resolve().parents[2] / "archiver_bot" / "__main__.py"
    return main.exists() and "verify_main" in main.read_text()


@pytest.mark.skipif(
    not _main_has_verify(), reason="archiver_bot/__main__.py does not wire `verify` yet"
)
async def test_command_line_verify_names_the_break(
    backend: Backend, open_store: OpenArchive
) -> None:
    await _archive_two_rooms(open_store)
    command = [sys.executable, "-m", "archiver_bot", "verify"]
    args = ["--data-dir", str(backend.paths.root.parent), "--database-url", backend.url]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    ok = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "archive verified: OK" in ok.stdout
    await reorder(backend)
    bad = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert f"BROKEN  {ROOM}  position 3: reordered" in bad.stdout
