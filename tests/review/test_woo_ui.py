"""The Woo pages of the review UI over plain HTTP: archivists only, CSRF on every form,
registering a request, assessing a document and the preview with withheld parts as black
boxes labelled with their ground (and without the withheld text)."""

from __future__ import annotations

import html as html_lib
import re
import secrets
from urllib.parse import quote

from tests.review.conftest import ReviewStack
from tests.review.test_ui import browser, csrf_of, login
from tests.review.test_woo_api import call, case, doc


def _article(page: str, event_id: str) -> str:
    """The document block of one event on the request page."""
    marker = f'href="/archief/gebeurtenissen/{quote(event_id, safe="")}"'
    at = page.index(marker)
    start = page.rindex('<article class="woo-doc', 0, at)
    return page[start: page.index("</article>", at)]


async def test_woo_pages_need_an_archivist(review_stack: ReviewStack) -> None:
    async with await browser(review_stack) as session:
        async with session.get("/archief/woo", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/archief/inloggen"
        async with session.post("/archief/woo", data={"kenmerk": "x"},
                                allow_redirects=False) as resp:
            assert resp.status == 303
        await login(session, review_stack, "minister")  # a key official: no session
        for path in ("/archief/woo", "/archief/woo/0123456789abcdef"):
            async with session.get(path, allow_redirects=False) as resp:
                assert resp.status == 303
                assert resp.headers["Location"] == "/archief/inloggen"


async def test_register_assess_and_preview_with_csrf(review_stack: ReviewStack) -> None:
    stack = review_stack
    ids = stack.archive.ids
    reference = f"2026-{secrets.token_hex(3)}"
    async with await browser(stack) as session:
        await login(session, stack, "archivaris")
        async with session.get("/archief/woo") as resp:
            page = await resp.text()
            assert resp.status == 200
        assert "Nieuw verzoek registreren" in page
        csrf = csrf_of(page)
        form = {"kenmerk": reference, "titel": "Begrotingschats", "kamer": stack.archive.room,
                "ontvangen": "2026-11-30", "van": "", "tot": "", "zoekterm": ""}

        # without the CSRF token (or with a wrong one) nothing is registered
        for bad in ({}, {"csrf": "fout"}):
            async with session.post("/archief/woo", data={**form, **bad},
                                    allow_redirects=False) as resp:
                assert resp.status == 403
        _, listed = await call(stack, "GET", "/api/v1/woo/requests")
        assert reference not in [r["reference"] for r in listed["requests"]]

        async with session.post("/archief/woo", data={**form, "csrf": csrf},
                                allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            request_url = resp.headers["Location"]
        # the same reference again: refused with the reason, on the page
        async with session.post("/archief/woo", data={**form, "csrf": csrf}) as resp:
            assert resp.status == 409
            assert "exists already" in html_lib.unescape(await resp.text())
        _, listed = await call(stack, "GET", "/api/v1/woo/requests")
        made = [r for r in listed["requests"] if r["reference"] == reference]
        assert len(made) == 1
        assert request_url == f"/archief/woo/{made[0]['id']}"

        async with session.get(request_url) as resp:
            page = await resp.text()
        assert resp.status == 200
        block = _article(page, ids["first"])
        assert "niet beoordeeld" in block
        assert "5.1.2e" in block
        assert "persoonlijke levenssfeer" in block  # the picker shows code and description
        action = re.search(r'<form method="post" action="([^"]+)"', block)
        assert action
        target = html_lib.unescape(action.group(1))

        text = "Goedemorgen, de begroting staat op de agenda."
        start = text.index("begroting")
        assess = {"besluit": "deels_openbaar", "grond": "5.1.2i",
                  "weglakkingen": f"{start}-{start + 9}:5.1.2i", "toelichting": "",
                  "anker": "doc-1"}
        for bad in ({}, {"csrf": "fout"}):
            async with session.post(target, data={**assess, **bad},
                                    allow_redirects=False) as resp:
                assert resp.status == 403
        assert doc(await case(stack, made[0]["id"]), ids["first"])["assessment"] is None

        # a span past the end of the text: 422 with the reason, nothing stored
        async with session.post(target, data={**assess, "csrf": csrf,
                                              "weglakkingen": "40-60:5.1.2i"}) as resp:
            assert resp.status == 422
            assert "outside the message text" in html_lib.unescape(await resp.text())
        async with session.post(target, data={**assess, "csrf": csrf,
                                              "weglakkingen": "niets"}) as resp:
            assert resp.status == 422
        assert doc(await case(stack, made[0]["id"]), ids["first"])["assessment"] is None

        async with session.post(target, data={**assess, "csrf": csrf},
                                allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        async with session.get(request_url) as resp:
            page = await resp.text()
        block = _article(page, ids["first"])
        preview = block[block.index('class="woo-preview"'):]
        preview = preview[: preview.index("</div>")]
        assert '<span class="woo-box" title="5.1.2i goed functioneren van de Staat">5.1.2i</span>' \
            in preview
        assert "begroting" not in preview  # the withheld word is not in the preview
        assert "Goedemorgen, de " in preview
        assert " staat op de agenda." in preview

        # niet openbaar: the whole message one black box with its grounds
        async with session.post(target, data={"csrf": csrf, "besluit": "niet_openbaar",
                                              "grond": "5.2", "weglakkingen": ""},
                                allow_redirects=False) as resp:
            assert resp.status == 303
        async with session.get(request_url) as resp:
            block = _article(await resp.text(), ids["first"])
        preview = block[block.index('class="woo-preview"'):]
        preview = preview[: preview.index("</div>")]
        assert "woo-box whole" in preview
        assert "Goedemorgen" not in preview
        assert "(vervangen)" in block  # the earlier assessment stays visible
    history = doc(await case(stack, made[0]["id"]), ids["first"])["history"]
    assert [h["decision"] for h in history] == ["deels_openbaar", "niet_openbaar"]
