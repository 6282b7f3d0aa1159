"""A ledger.db written by earlier versions (the transaction id as primary key) opens, is
migrated in place, and keeps working; opening it again changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server_bridge.appservice.ledger import (
    LEGACY_TRANSACTIONS,
    Ledger,
    Outcome,
    events_digest,
)
from server_bridge.appservice.transactions import LedgerRow

# The schema exactly as the earlier code created it.
LEGACY_SCHEMA = """
CREATE TABLE ledger_transactions (
    txn_id VARCHAR(255) NOT NULL,
    received_at BIGINT NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (txn_id)
);
CREATE TABLE ledger_events (
    seq INTEGER NOT NULL,
    event_id VARCHAR(255) NOT NULL,
    room_id VARCHAR(255) NOT NULL,
    sender VARCHAR(255) NOT NULL,
    type VARCHAR(255) NOT NULL,
    state_key TEXT,
    membership VARCHAR(32),
    origin_server_ts BIGINT NOT NULL,
    encrypted BOOLEAN NOT NULL,
    txn_id VARCHAR(255) NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE (event_id)
);
CREATE INDEX ix_ledger_events_room_id ON ledger_events (room_id);
"""

ROOM = "!oud:test.localhost"


def row(n: int) -> LedgerRow:
    return LedgerRow(
        event_id=f"$oud{n}",
        room_id=ROOM,
        sender="@minister:test.localhost",
        type="m.room.message",
        state_key=None,
        origin_server_ts=1_700_000_000_000 + n,
        encrypted=False,
    )


def legacy_ledger(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        for txn, received, numbers in (("1", 1_700_000_001_000, (1, 2)), ("2", 1_700_000_002_000,
                                                                         (3,))):
            db.execute("INSERT INTO ledger_transactions VALUES (?, ?, ?)",
                       (txn, received, len(numbers)))
            for n in numbers:
                r = row(n)
                db.execute(
                    "INSERT INTO ledger_events (event_id, room_id, sender, type, state_key, "
                    "membership, origin_server_ts, encrypted, txn_id, received_at) "
                    "VALUES (?, ?, ?, ?, NULL, NULL, ?, 0, ?, ?)",
                    (r.event_id, r.room_id, r.sender, r.type, r.origin_server_ts, txn, received),
                )


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


async def test_a_ledger_of_the_earlier_schema_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    legacy_ledger(path)

    ledger = await Ledger.open(path)
    try:
        assert LEGACY_TRANSACTIONS not in tables(path)
        log = await ledger.transactions()
        assert [(t["txn_id"], t["event_count"], t["new_events"]) for t in log] == [
            ("1", 2, 2),
            ("2", 1, 1),
        ]
        assert log[0]["digest"] == events_digest(["$oud1", "$oud2"])
        info = await ledger.info()
        # The ledger watched from its first transaction on, not from the migration.
        assert (info.watch_started_at, info.events, info.transactions) == (
            1_700_000_001_000, 3, 2)
        assert [r.event_id for r in (await ledger.rows_by_room())[ROOM]] == [
            "$oud1", "$oud2", "$oud3"]
        # It keeps working, also with the transaction ids the homeserver starts again at 1.
        retry = await ledger.record_transaction("2", [row(3)])
        assert retry.outcome is Outcome.DUPLICATE
        reused = await ledger.record_transaction("1", [row(4)])
        assert (reused.outcome, reused.new_events) == (Outcome.REUSED_ID, 1)
    finally:
        await ledger.close()

    # Opening again is idempotent: nothing copied twice, nothing lost.
    again = await Ledger.open(path)
    try:
        assert len(await again.transactions()) == 3
        assert await again.event_count() == 4
        assert (await again.info()).watch_started_at == 1_700_000_001_000
    finally:
        await again.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_a_new_ledger_watches_from_when_it_was_created(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "new" / "ledger.db")
    try:
        info = await ledger.info()
        assert info.watch_started_at > 1_700_000_000_000
        assert (info.last_received_at, info.events, info.transactions) == (None, 0, 0)
        first = await ledger.record_transaction("1", [row(1)])
        assert (first.outcome, first.new_events) == (Outcome.RECORDED, 1)
        assert (await ledger.info()).last_received_at is not None
    finally:
        await ledger.close()


async def test_a_delivery_that_skips_transaction_ids_is_flagged(tmp_path: Path) -> None:
    """Synapse keeps a transaction it created but could not send before it stopped, and
    sends it again only once the ledger was marked down: a skipped id is the sign."""
    path = tmp_path / "ledger.db"
    ledger = await Ledger.open(path)
    try:
        assert not (await ledger.record_transaction("16", [row(16)])).ids_skipped
        skipped = await ledger.record_transaction("18", [row(18)])  # 17 never arrived
        assert skipped.ids_skipped
        assert (skipped.outcome, skipped.previous_txn_id) == (Outcome.RECORDED, "16")
        # Synapse's recoverer sends the held-back 17, then 18 again (a duplicate).
        assert not (await ledger.record_transaction("17", [row(17)])).ids_skipped
        assert not (await ledger.record_transaction("18", [row(18)])).ids_skipped
        assert not (await ledger.record_transaction("19", [row(19)])).ids_skipped
    finally:
        await ledger.close()
    # After the bridge restarts, the numbering continues from the database.
    again = await Ledger.open(path)
    try:
        assert (await again.record_transaction("21", [row(21)])).ids_skipped
        # Synapse on SQLite starts again at 1 when it holds nothing: nothing skipped.
        assert not (await again.record_transaction("1", [row(30)])).ids_skipped
        # Ids that are not numbers (other homeservers) are never judged.
        assert not (await again.record_transaction("abc", [row(31)])).ids_skipped
        assert not (await again.record_transaction("7", [row(32)])).ids_skipped
    finally:
        await again.close()
