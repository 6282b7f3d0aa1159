"""The web UI in a real browser: Debian's Chromium driven by Playwright logs in, opens a
room, searches and verifies; messages with <script> and <img onerror> show as text and run
nothing. A screenshot of the transcript is saved under test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from tests.review.conftest import XSS_IMG, XSS_SCRIPT, ReviewStack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"



@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (`make test` installs Debian's chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


async def test_archivist_reads_searches_and_no_message_runs_code(
    review_stack: ReviewStack,
) -> None:
    dialogs: list[str] = []
    foreign: list[str] = []
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            context = await browser.new_context(viewport={"width": 1180, "height": 900},
                                                locale="nl-NL")
            page = await context.new_page()

            async def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                await dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: None if req.url.startswith(review_stack.url)
                    else foreign.append(req.url))

            # login (the room list redirects there first)
            await page.goto(review_stack.url + "/archief/")
            assert page.url.endswith("/archief/inloggen")
            await page.fill("#gebruikersnaam", "archivaris")
            await page.fill("#wachtwoord", review_stack.hs.password("archivaris"))
            await page.fill("#doel", "Woo-verzoek 2026-0412")
            await page.click("button[type=submit]")
            await page.wait_for_url("**/archief/")
            assert await page.locator("table.rooms").is_visible()
            cookies = {c["name"]: c for c in await context.cookies()}
            assert cookies["rijkschat_sessie"]["httpOnly"] is True
            assert cookies["rijkschat_sessie"]["sameSite"] == "Strict"
            assert await page.evaluate("document.cookie") == ""  # invisible to scripts
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "rooms.png"))

            # open the room: a chat-like transcript
            await page.click("text=Kabinetsberaad")
            await page.wait_for_selector("ol.transcript")
            script_line = page.locator("li.msg .body", has_text="<script>")
            img_line = page.locator("li.msg .body", has_text="<img src=x onerror=")
            assert (await script_line.first.inner_text()).strip() == XSS_SCRIPT
            assert (await img_line.first.inner_text()).strip() == XSS_IMG
            assert await page.locator("li.msg .body b", has_text="concept").count() == 1
            assert await page.evaluate("typeof window.__pwned") == "undefined"
            assert await page.evaluate(
                "document.querySelectorAll('main script, [onerror], iframe, object').length"
            ) == 0
            assert await page.locator("li.redacted", has_text="vertrouwelijke memo").count() == 1
            assert await page.locator("blockquote.reply").count() >= 1
            assert await page.locator("ul.reactions li", has_text="2").count() == 1
            image = page.locator(".attachment img")
            assert await image.evaluate("img => img.complete && img.naturalWidth > 0")
            # the edit history opens without any script
            await page.click("details.history summary")
            assert await page.locator("details.history li", has_text="10 uur").is_visible()

            # verify the room's chain with the button
            await page.click("text=Controleer integriteit")
            await page.wait_for_selector(".badge.ok")
            await page.screenshot(path=str(ARTIFACTS / "transcript.png"), full_page=True)

            # search with highlighted hits
            await page.click("nav >> text=Zoeken")
            await page.fill("#q", "begroting")
            await page.select_option("#kamer", review_stack.archive.room)
            await page.click("form.search button[type=submit]")
            await page.wait_for_selector("ol.hits")
            marks = await page.locator("ol.hits mark").all_inner_texts()
            assert marks
            assert {m.lower() for m in marks} == {"begroting"}
            await page.screenshot(path=str(ARTIFACTS / "search.png"))

            # the access log shows this session's reads with the stated purpose
            await page.click("nav >> text=Toegangslog")
            assert await page.locator("table.audit td", has_text="Woo-verzoek 2026-0412").count()
            await page.screenshot(path=str(ARTIFACTS / "access-log.png"))

            # logout ends the session
            await page.click("text=Uitloggen")
            await page.wait_for_url("**/archief/inloggen")
            await page.goto(review_stack.url + "/archief/")
            assert page.url.endswith("/archief/inloggen")
        finally:
            await browser.close()
    assert dialogs == []
    assert errors == []
    assert foreign == []
