"""Initial archive schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "archive_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "archive_rooms",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("room_id", sa.Text, nullable=False, unique=True),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("retention", sa.String(32), nullable=False),
        sa.Column(
            "retention_explicit", sa.Boolean, nullable=False, server_default=sa.text("false")
        ),
        sa.Column("legal_hold", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("head_seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("head_hash", sa.LargeBinary, nullable=False),
        sa.Column("info", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "archive_keys",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("room_pk", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("key_ref", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=True),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("destroyed_ts", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("room_pk", "epoch", name="uq_archive_keys_room_epoch"),
    )
    op.create_table(
        "archive_records",
        sa.Column("pk", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("room_pk", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("uid", sa.Text, nullable=False, unique=True),
        sa.Column("sender", sa.Text, nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=True),
        sa.Column("state_key", sa.Text, nullable=True),
        sa.Column("decryption", sa.String(16), nullable=True),
        sa.Column("sender_device", sa.Text, nullable=True),
        sa.Column("sender_key", sa.Text, nullable=True),
        sa.Column("session_id", sa.Text, nullable=True),
        sa.Column("rel_type", sa.Text, nullable=True),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("key_epoch", sa.Integer, nullable=True),
        sa.Column("ingested_ts", sa.BigInteger, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=True),
        sa.Column("digest", sa.LargeBinary, nullable=True),
        sa.Column("blob_digest", sa.LargeBinary, nullable=True),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("room_pk", "seq", name="uq_archive_records_room_seq"),
    )
    kind_is_event = sa.text("kind = 'event'")
    op.create_index(
        "ix_archive_records_timeline",
        "archive_records",
        ["room_pk", "ts", "pk"],
        sqlite_where=kind_is_event,
        postgresql_where=kind_is_event,
    )
    has_target = sa.text("target IS NOT NULL")
    op.create_index(
        "ix_archive_records_target",
        "archive_records",
        ["target"],
        sqlite_where=has_target,
        postgresql_where=has_target,
    )
    undecryptable = sa.text("decryption = 'undecryptable'")
    op.create_index(
        "ix_archive_records_undecryptable",
        "archive_records",
        ["session_id"],
        sqlite_where=undecryptable,
        postgresql_where=undecryptable,
    )
    op.create_table(
        "archive_attachments",
        sa.Column("record_pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "archive_search",
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("record_pk", sa.BigInteger, nullable=False),
        sa.Column("room_pk", sa.Integer, nullable=False),
        sa.Column("sender_h", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("token", "ts", "record_pk", name="pk_archive_search"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "archive_checkpoints",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "archive_access_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("details", sa.LargeBinary, nullable=False),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "archive_access_log",
        "archive_checkpoints",
        "archive_search",
        "archive_attachments",
        "archive_records",
        "archive_keys",
        "archive_rooms",
        "archive_meta",
    ):
        op.drop_table(table)
