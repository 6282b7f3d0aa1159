"""The Woo assessment screen in a real browser (Debian's Chromium via Playwright), without
any JavaScript: accept a suggested phone number, withhold a word with a ground chosen in the
picker, "Voorbeeld" shows black boxes labelled with their ground and none of the withheld
text, "Opslaan" stores the assessment, which the request page and the API then show. The
Content-Security-Policy keeps forbidding inline scripts on these pages."""

from __future__ import annotations

from playwright.async_api import async_playwright

from tests.review.conftest import ReviewStack
from tests.review.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, _chromium
from tests.review.test_woo_api import call, case, create, doc, q
from tests.review.test_woo_suggestions import BODY, NAME, PHONE, add_message

__all__ = ["_chromium"]  # the fixture that skips (or fails in CI) without Chromium

WORD = "vergadering"


def assert_no_scripts(headers: dict[str, str]) -> None:
    csp = headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no inline scripts, no eval
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


async def test_select_span_choose_ground_preview_and_save(review_stack: ReviewStack) -> None:
    stack = review_stack
    room, event_id = await add_message(stack)
    made = await create(stack, rooms=[room])
    phone_at, word_at = BODY.index(PHONE), BODY.index(WORD)
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            context = await browser.new_context(viewport={"width": 1180, "height": 1000},
                                                locale="nl-NL")
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(stack.url + "/archief/inloggen")
            await page.fill("#gebruikersnaam", "archivaris")
            await page.fill("#wachtwoord", stack.hs.password("archivaris"))
            await page.fill("#doel", f"Woo-verzoek {made['reference']}")
            await page.click("button[type=submit]")
            await page.wait_for_url("**/archief/")

            response = await page.goto(f"{stack.url}/archief/woo/{made['id']}")
            assert response is not None
            assert response.status == 200
            assert_no_scripts(await response.all_headers())
            assert await page.evaluate("document.scripts.length") == 0
            article = page.locator("#doc-1")
            assert await article.locator("a.permalink").get_attribute("href") \
                == f"/archief/gebeurtenissen/{event_id.replace('$', '%24')}"

            # the suggestions, none ticked; the name suggestion is left alone
            phone_box = article.locator(
                f'input[name=suggestie][value="{phone_at}-{phone_at + len(PHONE)}"]')
            assert await phone_box.is_checked() is False
            assert await article.locator("input[name=suggestie]").count() == 2
            await phone_box.check()
            # a word withheld on another ground, chosen in the picker
            await article.locator("input[name=besluit][value=deels_openbaar]").check()
            await article.locator("textarea[name=weglaten]").fill(WORD)
            await article.locator("select[name=spangrond]").select_option("5.1.2i")
            async with page.expect_navigation() as preview_nav:
                await article.locator("button[name=actie][value=voorbeeld]").click()
            preview_response = await preview_nav.value
            assert preview_response is not None
            assert preview_response.status == 200
            assert_no_scripts(await preview_response.all_headers())

            draft = page.locator("#doc-1 .woo-preview.draft")
            await draft.wait_for()
            boxes = draft.locator("span.woo-box")
            assert await boxes.all_inner_texts() == ["5.1.2e", "5.1.2i"]
            assert await boxes.first.get_attribute("title") == "5.1.2e persoonlijke levenssfeer"
            # black boxes: white on black
            colour = await boxes.first.evaluate("b => getComputedStyle(b).backgroundColor")
            assert colour == "rgb(0, 0, 0)"
            shown, markup = await draft.inner_text(), await draft.inner_html()
            for withheld in (PHONE, WORD):
                assert withheld not in shown
                assert withheld not in markup
            assert NAME in shown  # a suggestion not accepted is not withheld
            ARTIFACTS.mkdir(exist_ok=True)
            await page.locator("#doc-1").screenshot(path=str(ARTIFACTS / "woo-preview.png"))
            # nothing stored by the preview
            assert doc(await case(stack, made["id"]), event_id)["history"] == []

            # save: the page shows the decision with its grounds
            await page.locator("#doc-1 button[name=actie][value=opslaan]").click()
            await page.wait_for_url(f"**/archief/woo/{made['id']}#doc-1")
            badge = page.locator("#doc-1 .badge.decision-deels_openbaar")
            assert (await badge.inner_text()).strip() == "deels openbaar · 5.1.2e, 5.1.2i"
            saved = page.locator("#doc-1 .woo-preview:not(.draft)")
            assert await saved.get_attribute("data-decision") == "deels_openbaar"
            assert await saved.locator("span.woo-box").all_inner_texts() == ["5.1.2e", "5.1.2i"]
            assert PHONE not in await saved.inner_html()
            reloaded = await page.reload()
            assert reloaded is not None
            assert_no_scripts(await reloaded.all_headers())
        finally:
            await browser.close()
    assert errors == []

    body = doc(await case(stack, made["id"]), event_id)
    assessment = body["assessment"]
    assert assessment["decision"] == "deels_openbaar"
    assert assessment["grounds"] == ["5.1.2e", "5.1.2i"]
    assert assessment["spans"] == [
        {"start": phone_at, "end": phone_at + len(PHONE), "ground": "5.1.2e"},
        {"start": word_at, "end": word_at + len(WORD), "ground": "5.1.2i"},
    ]
    assert assessment["assessed_by"] == f"@archivaris:{stack.archive.server}"
    status, history = await call(
        stack, "GET", f"/api/v1/woo/requests/{made['id']}/documents/{q(event_id)}/suggestions")
    assert status == 200
    assert len(history["suggestions"]) == 2  # still offered; accepting one changes nothing
