"""The small key/value table: archive id, wrapped archive keys, sync position."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import meta


async def get(conn: AsyncConnection, name: str) -> str | None:
    return (
        await conn.execute(select(meta.c.value).where(meta.c.name == name))
    ).scalar_one_or_none()


async def put(conn: AsyncConnection, name: str, value: str) -> None:
    result = await conn.execute(update(meta).where(meta.c.name == name).values(value=value))
    if result.rowcount == 0:
        await conn.execute(insert(meta).values(name=name, value=value))
