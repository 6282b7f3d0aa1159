"""Per-room event statistics kept with the chain head (list_rooms without a full scan).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "archive_rooms",
        sa.Column("event_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("archive_rooms", sa.Column("first_ts", sa.BigInteger, nullable=True))
    op.add_column("archive_rooms", sa.Column("last_ts", sa.BigInteger, nullable=True))
    op.execute(
        "UPDATE archive_rooms SET "
        "event_count = (SELECT count(*) FROM archive_records r "
        "  WHERE r.room_pk = archive_rooms.pk AND r.kind = 'event'), "
        "first_ts = (SELECT min(ts) FROM archive_records r "
        "  WHERE r.room_pk = archive_rooms.pk AND r.kind = 'event'), "
        "last_ts = (SELECT max(ts) FROM archive_records r "
        "  WHERE r.room_pk = archive_rooms.pk AND r.kind = 'event')"
    )


def downgrade() -> None:
    with op.batch_alter_table("archive_rooms") as batch:
        batch.drop_column("last_ts")
        batch.drop_column("first_ts")
        batch.drop_column("event_count")
