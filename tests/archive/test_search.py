"""Blind-index search: Dutch-aware normalisation, exact words, AND, filters, newest first."""

from __future__ import annotations

import pytest

from archiver_bot.archive import Actor, Archive
from archiver_bot.archive.search import BlindIndex, normalise, words

from .conftest import ADVISEUR, BASE_TS, MINISTER, OTHER_ROOM, ROOM, Backend, message

READER = Actor("@archivaris:rijk.example", "zoekopdracht Woo-verzoek")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Één IJsselmeer-Café", ["een", "ijsselmeer", "cafe", "ijsselmeercafe"]),
        ("ideeën, reünie en coördinatie!", ["ideeen", "reunie", "en", "coordinatie"]),
        ("auto's en zo'n", ["autos", "en", "zon"]),
        ("e-mail E-MAIL email", ["e", "mail", "email"]),
        ("Straße 12 paginas", ["strasse", "12", "paginas"]),
        ("\u0133sbeer", ["ijsbeer"]),
        ("  ... ", []),
    ],
)
def test_normalisation_folds_case_accents_and_dutch_spellings(
    text: str, expected: list[str]
) -> None:
    assert words(text) == expected


def test_normalise_keeps_ascii_fast_path_equal() -> None:
    assert normalise("Kabinet") == "kabinet"
    assert normalise("Kabinét") == "kabinet"


def test_tokens_are_keyed() -> None:
    one, two = BlindIndex(b"a" * 32), BlindIndex(b"b" * 32)
    assert one.token("minister") == one.token("minister")
    assert one.token("minister") != two.token("minister")


async def _corpus(archive: Archive) -> None:
    await archive.ingest(
        [
            message(1, "De minister bespreekt de begroting", ts=BASE_TS + 1_000),
            message(2, "Begroting akkoord, café om vijf uur", ts=BASE_TS + 2_000, sender=ADVISEUR),
            message(3, "Geen begroting vandaag", ts=BASE_TS + 3_000, room=OTHER_ROOM),
            message(4, "De MINISTER is op reis", ts=BASE_TS + 4_000),
            message(5, "Het cafe is dicht", ts=BASE_TS + 5_000),
            message(6, "", type="m.room.topic", state_key="", content={"topic": "begroting 2027"}),
        ]
    )


async def test_one_word_is_exact_and_newest_first(archive: Archive) -> None:
    await _corpus(archive)
    hits = await archive.search(READER, "begroting")
    assert [h.event_id for h in hits] == [
        "$ev6:rijk.example",
        "$ev3:rijk.example",
        "$ev2:rijk.example",
        "$ev1:rijk.example",
    ]
    assert hits[1].event.content == {"msgtype": "m.text", "body": "Geen begroting vandaag"}
    assert await archive.search(READER, "begro") == []  # exact words only, no prefixes


async def test_words_are_anded_and_accents_fold_both_ways(archive: Archive) -> None:
    await _corpus(archive)
    assert [h.event_id for h in await archive.search(READER, "Café")] == [
        "$ev5:rijk.example",
        "$ev2:rijk.example",
    ]
    hits = await archive.search(READER, "cafe BEGROTING")
    assert [h.event_id for h in hits] == ["$ev2:rijk.example"]
    assert await archive.search(READER, "minister café") == []


async def test_filters_by_room_sender_and_time(archive: Archive) -> None:
    await _corpus(archive)
    in_room = await archive.search(READER, "begroting", room=OTHER_ROOM)
    assert [h.event_id for h in in_room] == ["$ev3:rijk.example"]
    by_sender = await archive.search(READER, "begroting", sender=ADVISEUR)
    assert [h.event_id for h in by_sender] == ["$ev2:rijk.example"]
    in_window = await archive.search(
        READER, "begroting", from_ts=BASE_TS + 1_500, to_ts=BASE_TS + 3_500
    )
    assert [h.event_id for h in in_window] == ["$ev3:rijk.example", "$ev2:rijk.example"]
    assert await archive.search(READER, "begroting", room="!onbekend:x") == []
    assert await archive.search(READER, "minister", sender=MINISTER, limit=1) != []


async def test_limit_and_deep_pages(archive: Archive) -> None:
    await archive.ingest([message(i, f"overleg nummer {i}") for i in range(120)])
    hits = await archive.search(READER, "overleg", limit=50)
    assert len(hits) == 50
    assert hits[0].event_id == "$ev119:rijk.example"
    assert hits[-1].event_id == "$ev70:rijk.example"
    rare = await archive.search(READER, "overleg 7")
    assert [h.event_id for h in rare] == ["$ev7:rijk.example"]


async def test_index_holds_no_words_and_search_terms_are_not_logged_in_clear(
    backend: Backend, archive: Archive
) -> None:
    await _corpus(archive)
    await archive.search(READER, "begroting")
    tokens = await backend.sql("SELECT token FROM archive_search")
    assert tokens
    assert all(isinstance(t, int) for (t,) in tokens)
    logged = await backend.sql("SELECT user_id, action, details FROM archive_access_log")
    assert any(action == "search" for _, action, _ in logged)
    assert all(b"begroting" not in bytes(details) for _, _, details in logged)
    entries = await archive.access_log(READER, limit=5)
    searches = [e for e in entries if e.action == "search"]
    assert searches[0].details["terms"] == ["begroting"]
    assert searches[0].purpose == "zoekopdracht Woo-verzoek"


async def test_undecryptable_content_is_not_indexed(archive: Archive) -> None:
    await archive.ingest(
        [message(1, "", decryption="undecryptable", content={"ciphertext": "begroting"})]
    )
    assert await archive.search(READER, "begroting") == []
    assert ROOM
