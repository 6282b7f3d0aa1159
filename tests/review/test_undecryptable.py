"""Events undecryptable past the grace period on the room and completeness pages, with what
to do; younger ones are not listed (the archive may still receive their keys)."""

from __future__ import annotations

import time
from urllib.parse import quote

from server_bridge.review.service import REVIEW
from tests.review.conftest import BASE_TS, ReviewStack
from tests.review.test_ui import browser, login


async def test_room_and_completeness_pages_list_overdue_undecryptable_events(
    review_stack: ReviewStack,
) -> None:
    archive = review_stack.archive
    event_id = archive.ids["undecryptable"]
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        pages = {
            "room": f"/archief/kamers/{quote(archive.room, safe='')}",
            "completeness": "/archief/volledigheid",
        }
        for what, page in pages.items():
            async with session.get(page) as resp:
                assert resp.status == 200
                html = await resp.text()
            section = html.split('id="niet-ontsleuteld"', 1)[1].split("</section>", 1)[0]
            assert "Niet te ontsleutelen berichten (1)" in html, what
            assert event_id in section
            assert "megolm-1" in section  # the session whose key is needed
            assert "E2E-kamersleutels exporteren" in section
            assert "Export E2E room keys" in section
            assert "rijkschat keys export" in section
            assert "AwgAzz" not in section  # never the ciphertext, let alone content
        async with session.get(f"/archief/kamers/{quote(archive.big_room, safe='')}") as resp:
            assert 'id="niet-ontsleuteld"' not in await resp.text()


async def test_undecryptable_events_within_the_grace_period_are_not_listed(
    review_stack: ReviewStack,
) -> None:
    service = review_stack.app[REVIEW]
    room = review_stack.archive.room
    overdue = await service.overdue_undecryptable(300, room)
    assert [e.event_id for e in overdue] == [review_stack.archive.ids["undecryptable"]]
    age = time.time() - BASE_TS / 1000
    assert await service.overdue_undecryptable(age + 3600, room) == []
    assert await service.overdue_undecryptable(300, review_stack.archive.big_room) == []
