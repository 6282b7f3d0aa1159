"""Bad input is rejected per event with a clear, logged reason; the rest is stored."""

from __future__ import annotations

import logging

import pytest

from archiver_bot.archive import MAX_CONTENT_BYTES, Archive, InvalidEventError

from .conftest import ROOM, message


async def test_bad_events_are_rejected_and_the_rest_of_the_batch_is_stored(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    big = message(2, "x" * (MAX_CONTENT_BYTES + 10))
    surrogate = message(3, "kapot \udcff tekst")
    not_object = message(4, "", content=["geen", "object"])  # type: ignore[arg-type]
    not_json = message(5, "", content={"body": b"bytes"})
    nan = message(6, "", content={"value": float("nan")})
    bad_ts = message(7, "ok", origin_server_ts=-5)
    bad_sender = message(8, "ok", sender="")
    batch = [message(1, "goed"), big, surrogate, not_object, not_json, nan, bad_ts, bad_sender]
    batch.append(message(9, "ook goed"))
    with caplog.at_level(logging.ERROR, logger="archiver_bot.archive"):
        result = await archive.ingest(batch, sync_token="after-bad")
    assert result.inserted == 2
    rejected = dict(result.rejected)
    assert set(rejected) == {f"$ev{i}:rijk.example" for i in range(2, 9)}
    assert "over the Matrix limit of 65536" in rejected["$ev2:rijk.example"]
    assert "lone surrogate" in rejected["$ev3:rijk.example"]
    assert "not a JSON object" in rejected["$ev4:rijk.example"]
    assert "not valid JSON" in rejected["$ev5:rijk.example"]
    assert "not valid JSON" in rejected["$ev6:rijk.example"]
    assert "origin_server_ts" in rejected["$ev7:rijk.example"]
    assert "sender" in rejected["$ev8:rijk.example"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("rejected event" in m for m in logged) == 7
    assert not any("xxxx" in m or "kapot" in m for m in logged), "content must never be logged"
    assert await archive.archived_event_ids(ROOM) == {"$ev1:rijk.example", "$ev9:rijk.example"}
    assert await archive.sync_token() == "after-bad"
    assert (await archive.verify()).ok


async def test_content_at_exactly_the_limit_is_accepted(archive: Archive) -> None:
    overhead = len('{"msgtype":"m.text","body":""}')
    exact = message(1, "a" * (MAX_CONTENT_BYTES - overhead))
    assert (await archive.ingest([exact])).inserted == 1


async def test_bad_late_decryption_raises_typed_error(archive: Archive) -> None:
    await archive.ingest([message(1, "", decryption="undecryptable")])
    with pytest.raises(InvalidEventError, match="lone surrogate"):
        await archive.add_decryption("$ev1:rijk.example", {"body": "\ud800"}, "D", "K")
    assert await archive.undecryptable_count() == 1


async def test_absurdly_nested_content_is_rejected_not_crashing_the_batch(
    archive: Archive,
) -> None:
    nested: dict[str, object] = {}
    cursor = nested
    for _ in range(100_000):
        cursor["x"] = {}
        cursor = cursor["x"]  # type: ignore[assignment]
    result = await archive.ingest([message(1, "", content=nested), message(2, "goed")])
    assert result.inserted == 1
    assert result.rejected[0][0] == "$ev1:rijk.example"
