"""Suggested 5.1.2e spans (phone numbers, names of officials who are not key officials) in
the Woo API and on the request page, and the assessment form without JavaScript: accept a
suggestion, withhold an exact text or a begin/end range with a ground from the picker,
"Voorbeeld" shows black boxes without saving, "Opslaan" stores. CSRF on both actions, bad
input is a clear 422 with nothing stored, and suggestions are never stored by themselves."""

from __future__ import annotations

import html as html_lib
import json
import re
import secrets
from pathlib import Path
from typing import Any

from archiver_bot.archive import ArchivePaths, open_archive
from server_bridge.woo.service import suggestion_names
from tests.review.conftest import ReviewStack, _ev
from tests.review.test_openapi import validate
from tests.review.test_ui import browser, csrf_of, login
from tests.review.test_woo_api import call, case, create, doc, q

PHONE = "06-12345678"
NAME = "Ambtenaar Twee"  # an official in the test roster: suggested
KEY_OFFICIAL = "Minister van Testzaken"  # a key official: never suggested
BODY = f"Bel {NAME} op {PHONE} over de vergadering met de {KEY_OFFICIAL}."


async def add_message(stack: ReviewStack, body: str = BODY) -> tuple[str, str]:
    """A new room in the archive with one message; returns (room id, event id)."""
    room = f"!woo{secrets.token_hex(4)}:{stack.archive.server}"
    sender = f"@ambtenaar1:{stack.archive.server}"
    record = _ev(300_000 + secrets.randbelow(10**6), room, sender,
                 {"msgtype": "m.text", "body": body})
    archive = await open_archive(ArchivePaths.for_data_dir(stack.archive.data_dir))
    try:
        result = await archive.ingest([record])
        assert not result.rejected, result.rejected
        await archive.set_room_info(room, name="Woo-overleg", members=[sender])
    finally:
        await archive.close()
    return room, record.event_id


def article(page: str, anchor_event: str) -> str:
    marker = f'href="/archief/gebeurtenissen/{q(anchor_event)}"'
    at = page.index(marker)
    start = page.rindex('<article class="woo-doc', 0, at)
    return page[start: page.index("</article>", at)]


def draft_of(block: str) -> str:
    at = block.index('class="woo-preview draft"')
    return block[at: block.index("</div>", at)]


def expected_suggestions() -> list[dict[str, Any]]:
    name_at, phone_at = BODY.index(NAME), BODY.index(PHONE)
    return [
        {"start": name_at, "end": name_at + len(NAME), "kind": "naam", "ground": "5.1.2e",
         "text": NAME},
        {"start": phone_at, "end": phone_at + len(PHONE), "kind": "telefoon",
         "ground": "5.1.2e", "text": PHONE},
    ]


def strip_reason(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for item in items:
        assert item.pop("reason")
    return items


async def test_api_gives_suggestions_and_stores_nothing(review_stack: ReviewStack) -> None:
    stack = review_stack
    room, event_id = await add_message(stack)
    made = await create(stack, rooms=[room])
    body = await case(stack, made["id"])
    document = doc(body, event_id)
    assert strip_reason(document["suggestions"]) == expected_suggestions()
    assert document["assessment"] is None
    assert document["history"] == []

    path = f"/api/v1/woo/requests/{made['id']}/documents/{q(event_id)}/suggestions"
    status, got = await call(stack, "GET", path)
    assert status == 200, got
    assert got["event_id"] == event_id
    assert strip_reason(got["suggestions"]) == expected_suggestions()
    # archivists only
    assert (await call(stack, "GET", path, who=None))[0] == 401
    assert (await call(stack, "GET", path, who="minister"))[0] == 403
    assert (await call(stack, "GET", path, who="ambtenaar1"))[0] == 403
    # a message outside the request's scope, an unknown event, an unknown request
    outside = f"/api/v1/woo/requests/{made['id']}/documents/{q(stack.archive.ids['first'])}"
    status, err = await call(stack, "GET", outside + "/suggestions")
    assert status == 422
    assert "outside the request's scope" in err["error"]
    status, _ = await call(stack, "GET", f"/api/v1/woo/requests/{made['id']}/documents/"
                                         f"{q('$onbekend')}/suggestions")
    assert status == 404
    status, _ = await call(stack, "GET", f"/api/v1/woo/requests/0123456789abcdef/documents/"
                                         f"{q(event_id)}/suggestions")
    assert status == 404
    # asking for suggestions stores no assessment
    document = doc(await case(stack, made["id"]), event_id)
    assert document["assessment"] is None
    assert document["history"] == []


async def test_form_preview_save_csrf_and_bad_input(review_stack: ReviewStack) -> None:
    stack = review_stack
    room, event_id = await add_message(stack)
    made = await create(stack, rooms=[room])
    request_url = f"/archief/woo/{made['id']}"
    phone_at = BODY.index(PHONE)
    word = "vergadering"
    word_at = BODY.index(word)

    async def stored() -> dict[str, Any]:
        return doc(await case(stack, made["id"]), event_id)

    async with await browser(stack) as session:
        await login(session, stack, "archivaris")
        async with session.get(request_url) as resp:
            page = await resp.text()
            assert resp.status == 200
            csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "<script" not in page
        csrf = csrf_of(page)
        block = article(page, event_id)
        # the suggestions as checkboxes, none ticked: kind, text, offsets and ground
        boxes = re.findall(r'<input type="checkbox" name="suggestie" value="([^"]+)"( checked)?',
                           block)
        assert boxes == [(f"{s['start']}-{s['end']}", "") for s in expected_suggestions()]
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", block))
        assert f"telefoonnummer: {PHONE} (tekens {phone_at}-{phone_at + len(PHONE)}, 5.1.2e)" \
            in text
        assert f"naam: {NAME}" in text
        assert f"naam: {KEY_OFFICIAL}" not in text
        # the text with character offsets and the ground picker (code and description)
        assert f"<sup>{word_at}</sup>{word}" in block
        assert '<option value="5.1.2i">5.1.2i goed functioneren van de Staat</option>' in block
        target = html_lib.unescape(
            re.search(r'<form method="post" action="([^"]+)"', block).group(1)  # type: ignore[union-attr]
        )

        form = {"besluit": "deels_openbaar", "suggestie": f"{phone_at}-{phone_at + len(PHONE)}",
                "weglaten": word, "spangrond": "5.1.2i", "begin": "", "eind": "",
                "weglakkingen": "", "toelichting": "", "anker": "doc-1"}
        # CSRF on both actions: refused, nothing stored
        for action in ("voorbeeld", "opslaan"):
            for bad in ({}, {"csrf": "fout"}):
                async with session.post(target, data={**form, **bad, "actie": action},
                                        allow_redirects=False) as resp:
                    assert resp.status == 403
        assert (await stored())["history"] == []

        # Voorbeeld: black boxes with their grounds, the withheld texts absent, nothing stored
        async with session.post(target, data={**form, "csrf": csrf, "actie": "voorbeeld"},
                                allow_redirects=False) as resp:
            assert resp.status == 200
            assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
            page = await resp.text()
        block = article(page, event_id)
        draft = draft_of(block)
        assert '<span class="woo-box" title="5.1.2e persoonlijke levenssfeer">5.1.2e</span>' \
            in draft
        assert ">5.1.2i</span>" in draft
        assert PHONE not in draft
        assert word not in draft
        assert NAME in draft  # not accepted: the suggestion stays a suggestion
        assert "Voorbeeld (niet opgeslagen)" in block
        assert "has-error" not in block  # a preview is not an error
        # the form keeps the choice, now as spans; the ticked suggestion stays ticked
        spans_text = (f"{phone_at}-{phone_at + len(PHONE)}:5.1.2e\n"
                      f"{word_at}-{word_at + len(word)}:5.1.2i")
        assert f'name="weglakkingen">{spans_text}</textarea>' in block
        assert f'value="{phone_at}-{phone_at + len(PHONE)}" checked' in block
        assert (await stored())["history"] == []

        # bad input: a clear 422 and nothing stored
        bad_inputs: list[tuple[dict[str, str], str]] = [
            ({"weglaten": "Rutte"}, "does not occur in the message"),
            ({"weglaten": "de"}, "occurs 3 times in the message"),
            ({"spangrond": ""}, "kies de weigeringsgrond"),
            ({"spangrond": "9.9.9"}, "unknown Woo ground code(s): 9.9.9"),
            ({"suggestie": "0-3"}, "hoort niet (meer) bij dit bericht"),
            ({"weglaten": "", "begin": str(len(BODY) - 2), "eind": "500"},
             "outside the message text"),
            ({"weglaten": "", "begin": "tien", "eind": "12"}, "Begin moet een getal zijn"),
            ({"besluit": "openbaar"}, "a decision openbaar withholds nothing"),
        ]
        for action in ("voorbeeld", "opslaan"):
            for change, message in bad_inputs:
                async with session.post(target, data={**form, **change, "csrf": csrf,
                                                      "actie": action}) as resp:
                    assert resp.status == 422, change
                    page = await resp.text()
                assert message in html_lib.unescape(page), (change, message)
                assert 'class="woo-preview draft"' not in page
                assert "has-error" in article(page, event_id)
        assert (await stored())["history"] == []

        # Opslaan: stored with the accepted suggestion and the withheld word only
        async with session.post(target, data={**form, "csrf": csrf, "actie": "opslaan"},
                                allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            assert resp.headers["Location"] == request_url + "#doc-1"
        async with session.get(request_url) as resp:
            block = article(await resp.text(), event_id)
        assert "deels openbaar · 5.1.2e, 5.1.2i" in block
    assessment = (await stored())["assessment"]
    assert assessment["decision"] == "deels_openbaar"
    assert assessment["grounds"] == ["5.1.2e", "5.1.2i"]
    assert assessment["spans"] == [
        {"start": phone_at, "end": phone_at + len(PHONE), "ground": "5.1.2e"},
        {"start": word_at, "end": word_at + len(word), "ground": "5.1.2i"},
    ]


async def test_begin_end_entry_and_single_ground_default(review_stack: ReviewStack) -> None:
    stack = review_stack
    room, event_id = await add_message(stack)
    made = await create(stack, rooms=[room])
    name_at = BODY.index(NAME)
    async with await browser(stack) as session:
        await login(session, stack, "archivaris")
        async with session.get(f"/archief/woo/{made['id']}") as resp:
            page = await resp.text()
        csrf = csrf_of(page)
        target = html_lib.unescape(re.search(  # type: ignore[union-attr]
            r'<form method="post" action="([^"]+)"', article(page, event_id)).group(1))
        # one ground ticked and no ground picked for the span: the span takes that ground
        async with session.post(target, data={
            "csrf": csrf, "actie": "opslaan", "besluit": "deels_openbaar", "grond": "5.1.2e",
            "begin": str(name_at), "eind": str(name_at + len(NAME)), "spangrond": "",
        }, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
    assessment = doc(await case(stack, made["id"]), event_id)["assessment"]
    assert assessment["spans"] == [
        {"start": name_at, "end": name_at + len(NAME), "ground": "5.1.2e"}
    ]


async def test_answers_match_the_openapi_document(review_stack: ReviewStack) -> None:
    stack = review_stack
    room, event_id = await add_message(stack)
    made = await create(stack, rooms=[room])
    _, document, _ = await stack.get("/api/v1/openapi.json")
    body = await case(stack, made["id"])
    assert doc(body, event_id)["suggestions"]
    validate(document, "/api/v1/woo/requests/{request_id}", body)
    path = f"/api/v1/woo/requests/{made['id']}/documents/{q(event_id)}/suggestions"
    status, got = await call(stack, "GET", path)
    assert status == 200
    validate(document,
             "/api/v1/woo/requests/{request_id}/documents/{event_id}/suggestions", got)


def test_suggestion_names_from_the_public_roster(tmp_path: Path) -> None:
    assert suggestion_names(tmp_path) == []  # no roster: only the patterns are suggested
    (tmp_path / "roster.json").write_text("{niet json")
    assert suggestion_names(tmp_path) == []
    users = [
        {"user_id": "@minister:x", "role": "key_official", "display_name": "Minister Visser"},
        {"user_id": "@beleid1:x", "role": "official", "display_name": "Beleidsmedewerker Jansen"},
        {"user_id": "@archivaris:x", "role": "archivist", "display_name": "Archivaris Bakker"},
        {"user_id": "@rijksarchief:x", "role": "archiver",
         "display_name": "Rijksarchief (archivering)"},
        {"user_id": "@vreemd:x", "role": "onbekend", "display_name": "Vreemde Rol"},
        {"role": "official", "display_name": "Zonder Id"},
    ]
    (tmp_path / "roster.json").write_text(json.dumps({"server_name": "x", "users": users}))
    assert suggestion_names(tmp_path) == ["Beleidsmedewerker Jansen", "Archivaris Bakker"]
