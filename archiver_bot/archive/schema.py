"""Table definitions of the archive store (SQLAlchemy Core; migrations mirror them).

All tables carry the ``archive_`` prefix so the store can share a PostgreSQL database.
No column holds message text: content, room names, attachment bytes and access-log details
are AES-256-GCM ciphertext; the search index holds truncated HMACs of words.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

#: BIGINT on PostgreSQL, INTEGER (a rowid alias, fast) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "archive_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

rooms = Table(
    "archive_rooms",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("room_id", Text, nullable=False, unique=True),
    Column("created_ts", BigInteger, nullable=False),
    Column("retention", String(32), nullable=False),
    Column("retention_explicit", Boolean, nullable=False, server_default=text("false")),
    Column("legal_hold", Boolean, nullable=False, server_default=text("false")),
    Column("head_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("head_hash", LargeBinary, nullable=False),
    Column("info", LargeBinary, nullable=True),
    Column("event_count", BigInteger, nullable=False, server_default=text("0")),
    Column("first_ts", BigInteger, nullable=True),
    Column("last_ts", BigInteger, nullable=True),
)

data_keys = Table(
    "archive_keys",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("room_pk", Integer, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("key_ref", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=True),
    Column("created_ts", BigInteger, nullable=False),
    Column("destroyed_ts", BigInteger, nullable=True),
    UniqueConstraint("room_pk", "epoch", name="uq_archive_keys_room_epoch"),
)

records = Table(
    "archive_records",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("room_pk", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("uid", Text, nullable=False, unique=True),
    Column("sender", Text, nullable=True),
    Column("ts", BigInteger, nullable=False),
    Column("type", Text, nullable=True),
    Column("state_key", Text, nullable=True),
    Column("decryption", String(16), nullable=True),
    Column("sender_device", Text, nullable=True),
    Column("sender_key", Text, nullable=True),
    Column("session_id", Text, nullable=True),
    Column("rel_type", Text, nullable=True),
    Column("target", Text, nullable=True),
    Column("key_epoch", Integer, nullable=True),
    Column("ingested_ts", BigInteger, nullable=False),
    Column("ciphertext", LargeBinary, nullable=True),
    Column("digest", LargeBinary, nullable=True),
    Column("blob_digest", LargeBinary, nullable=True),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    UniqueConstraint("room_pk", "seq", name="uq_archive_records_room_seq"),
)
Index(
    "ix_archive_records_timeline",
    records.c.room_pk,
    records.c.ts,
    records.c.pk,
    sqlite_where=records.c.kind == "event",
    postgresql_where=records.c.kind == "event",
)
Index(
    "ix_archive_records_target",
    records.c.target,
    sqlite_where=records.c.target.isnot(None),
    postgresql_where=records.c.target.isnot(None),
)
Index(
    "ix_archive_records_undecryptable",
    records.c.session_id,
    sqlite_where=records.c.decryption == "undecryptable",
    postgresql_where=records.c.decryption == "undecryptable",
)

attachments = Table(
    "archive_attachments",
    metadata,
    Column("record_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("blob", LargeBinary, nullable=False),
)

search = Table(
    "archive_search",
    metadata,
    Column("token", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("record_pk", BigInteger, nullable=False),
    Column("room_pk", Integer, nullable=False),
    Column("sender_h", Integer, nullable=False),
    PrimaryKeyConstraint("token", "ts", "record_pk", name="pk_archive_search"),
    sqlite_with_rowid=False,
)

checkpoints = Table(
    "archive_checkpoints",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

access_log = Table(
    "archive_access_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("action", String(32), nullable=False),
    Column("details", LargeBinary, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
)

#: Woo (Wet open overheid) requests and assessments: a chain of its own beside the access
#: log. Kind, request id and who/when are in the clear; everything else (reference, title,
#: scope, the event assessed, decision, grounds, spans, note) is sealed under the metadata key.
woo_log = Table(
    "archive_woo_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("details", LargeBinary, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
)
Index("ix_archive_woo_log_request", woo_log.c.request_id, woo_log.c.seq)

ALL_TABLES = (
    meta, rooms, data_keys, records, attachments, search, checkpoints, access_log, woo_log
)
