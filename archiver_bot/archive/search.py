"""Blind search index: Dutch-aware normalisation, keyed word tokens, and the query.

Only ``HMAC-SHA256(index key, normalised word)`` truncated to 64 bits is stored, one row per
distinct word per message, next to the message time, room and a 32-bit keyed sender tag.
What this leaks to someone holding the database but not the keys: which messages share a
word, how often each (unknown) word occurs, message length in distinct words, and time/room
placement. It does not reveal the words themselves.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.sql.elements import ColumnElement

from .schema import search

MAX_TOKEN_CHARS = 64
_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_TEXT_TYPES = {"m.room.message", "m.room.name", "m.room.topic", "m.sticker"}


def normalise(text: str) -> str:
    """Lower case with accents folded: ``"Één IJsselmeer-café"`` -> ``"een ijsselmeer-cafe"``."""
    folded = text.casefold()
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Distinct normalised words of ``text``, in order of first appearance.

    Apostrophes inside a word are dropped (``auto's`` -> ``autos``, ``zo'n`` -> ``zon``);
    a hyphenated word yields its parts and the joined form (``e-mail`` -> ``e``, ``mail``,
    ``email``), so either spelling finds it.
    """
    found = _WORD.findall(normalise(text))
    if not any(c in text for c in "'\u2019-"):
        return list(dict.fromkeys(w[:MAX_TOKEN_CHARS] for w in found))
    seen: dict[str, None] = {}
    for match in found:
        word = match.replace("'", "").replace("\u2019", "")
        if "-" in word:
            for part in word.split("-"):
                if part:
                    seen.setdefault(part[:MAX_TOKEN_CHARS], None)
            word = word.replace("-", "")
        if word:
            seen.setdefault(word[:MAX_TOKEN_CHARS], None)
    return list(seen)


def indexable_text(event_type: str | None, content: Mapping[str, Any] | None) -> str:
    """The human text of an event that search should find."""
    if not content or event_type not in _TEXT_TYPES:
        return ""
    parts: list[str] = []
    new_content = content.get("m.new_content")
    source = new_content if isinstance(new_content, Mapping) else content
    for key in ("body", "name", "topic"):
        value = source.get(key)
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


class BlindIndex:
    """Keyed word tokens with a bounded cache (memory stays flat)."""

    def __init__(self, key: bytes, cache_size: int = 200_000) -> None:
        self._key = key
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def _mac(self, label: bytes, value: str) -> bytes:
        return hmac.digest(self._key, label + value.encode("utf-8", "surrogatepass"), "sha256")

    def token(self, word: str) -> int:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        value = int.from_bytes(self._mac(b"w\x00", word)[:8], "big", signed=True)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[word] = value
        return value

    def sender_tag(self, sender: str) -> int:
        return int.from_bytes(self._mac(b"s\x00", sender)[:4], "big", signed=True)

    def tokens(self, text: str) -> list[int]:
        return list(dict.fromkeys(self.token(w) for w in words(text)))


def count_capped(token: int, cap: int) -> Select[tuple[int]]:
    inner = select(search.c.record_pk).where(search.c.token == token).limit(cap).subquery()
    return select(func.count()).select_from(inner)


def hits_query(
    tokens: Iterable[int],
    *,
    room_pk: int | None,
    sender_tag: int | None,
    from_ts: int | None,
    to_ts: int | None,
    before: tuple[int, int] | None,
    limit: int,
) -> Select[tuple[int, int]]:
    """Newest-first record pks having all ``tokens``; the first token drives the scan
    (callers put the rarest first) and each other token is a primary-key probe."""
    driver, *others = list(tokens)
    a = search.alias("a")
    conds: list[ColumnElement[bool]] = [a.c.token == driver]
    if room_pk is not None:
        conds.append(a.c.room_pk == room_pk)
    if sender_tag is not None:
        conds.append(a.c.sender_h == sender_tag)
    if from_ts is not None:
        conds.append(a.c.ts >= from_ts)
    if to_ts is not None:
        conds.append(a.c.ts <= to_ts)
    if before is not None:
        conds.append((a.c.ts < before[0]) | and_(a.c.ts == before[0], a.c.record_pk < before[1]))
    for i, other in enumerate(others):
        b = search.alias(f"b{i}")
        conds.append(
            exists().where(b.c.token == other, b.c.ts == a.c.ts, b.c.record_pk == a.c.record_pk)
        )
    return (
        select(a.c.record_pk, a.c.ts)
        .where(and_(*conds))
        .order_by(a.c.ts.desc(), a.c.record_pk.desc())
        .limit(limit)
    )
