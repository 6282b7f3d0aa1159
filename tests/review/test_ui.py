"""The web UI over plain HTTP: login with Matrix credentials, cookies, CSRF, headers, and
message text that is always escaped or sanitised."""

from __future__ import annotations

import re
from urllib.parse import quote

import aiohttp
import pytest

from server_bridge.review.security import CSP
from server_bridge.review.sessions import FAILED_LOGIN_LIMIT, THROTTLE
from tests.review.conftest import ReviewStack

LOGIN = "/archief/inloggen"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def browser(stack: ReviewStack) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=stack.url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(session: aiohttp.ClientSession, stack: ReviewStack, who: str,
                password: str | None = None, purpose: str = "") -> aiohttp.ClientResponse:
    async with session.get(LOGIN) as resp:
        token = csrf_of(await resp.text())
    if password is None:
        password = stack.hs.password(who)
    form = {"csrf": token, "gebruikersnaam": who, "wachtwoord": password,
            "doel": purpose}
    async with session.post(LOGIN, data=form, allow_redirects=False) as resp:
        await resp.read()
        return resp


async def test_login_sets_a_strict_httponly_session_and_logout_ends_it(
    review_stack: ReviewStack,
) -> None:
    async with await browser(review_stack) as session:
        async with session.get("/", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/archief/"
        async with session.get("/archief/", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == LOGIN
        resp = await login(session, review_stack, "archivaris", purpose="Woo-verzoek 12")
        assert resp.status == 303, resp.status
        cookie = next(v for k, v in resp.headers.items()
                      if k.lower() == "set-cookie" and "rijkschat_sessie=" in v)
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/archief" in cookie
        async with session.get("/archief/") as resp:
            html = await resp.text()
            assert resp.status == 200
            assert "Kabinetsberaad" in html
            assert "Grote kamer" in html
            assert "juridische bewaarplicht" in html
            assert "Woo-verzoek 12" in html
        csrf = csrf_of(html)
        async with session.post("/archief/uitloggen", data={"csrf": "wrong"},
                                allow_redirects=False) as resp:
            assert resp.status == 403  # CSRF
        async with session.post("/archief/uitloggen", data={"csrf": csrf},
                                allow_redirects=False) as resp:
            assert resp.status == 303
        async with session.get("/archief/", allow_redirects=False) as resp:
            assert resp.status == 303


async def test_login_needs_the_csrf_token_and_right_credentials(
    review_stack: ReviewStack,
) -> None:
    async with await browser(review_stack) as session:
        async with session.post(LOGIN, data={"gebruikersnaam": "archivaris",
                                             "wachtwoord": review_stack.hs.password("archivaris")},
                                allow_redirects=False) as resp:
            assert resp.status == 403
            assert "Traceback" not in await resp.text()
        resp = await login(session, review_stack, "archivaris", password="fout-wachtwoord")
        assert resp.status == 401


@pytest.mark.parametrize("who", ["minister", "ambtenaar1"])
async def test_officials_cannot_log_in(review_stack: ReviewStack, who: str) -> None:
    async with await browser(review_stack) as session:
        resp = await login(session, review_stack, who)
        assert resp.status == 403
        async with session.get("/archief/", allow_redirects=False) as resp:
            assert resp.status == 303


async def test_pages_escape_text_sanitise_html_and_send_a_strict_csp(
    review_stack: ReviewStack,
) -> None:
    a = review_stack.archive
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        async with session.get(f"/archief/kamers/{quote(a.room, safe='')}") as resp:
            html = await resp.text()
            assert resp.status == 200
            csp = resp.headers["Content-Security-Policy"]
            assert csp == CSP
            assert "unsafe-inline" not in csp
            assert "script-src 'self'" in csp
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Cache-Control"] == "no-store"
        assert "<script" not in html.lower()
        assert "onerror" not in html.replace("onerror=\\&#34;", "").replace(
            "onerror=&#34;", "")  # only escaped text may mention it
        assert "&lt;script&gt;window.__pwned = &#39;script&#39;&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=&#34;window.__pwned = &#39;img&#39;&#34;&gt;" in html
        assert "<b>concept</b>" in html  # allowed formatting survives the sanitiser
        assert "javascript:" not in html
        assert "Het vertrouwelijke memo over de fusie" in html  # redacted, still readable
        assert "Verwijderd bericht" in html
        assert "per ongeluk verstuurd" in html
        assert "Vergadering om 11 uur" in html
        assert "Bewerkingsgeschiedenis" in html
        assert "✓ 2" in html
        assert "Akkoord, ik breng de cijfers mee." in html
        assert 'class="reply"' in html
        assert "in draad van" in html
        assert "1 antwoord in draad" in html
        assert "nota begroting.pdf" in html
        assert "grafiek.png" in html
        assert "niet worden ontsleuteld" in html
        for src in re.findall(r'(?:src|href)="([^"#]+)"', html):
            assert src.startswith("/archief/"), src  # every asset and link is local
        async with session.get("/archief/static/review.css") as resp:
            assert resp.status == 200


async def test_search_page_highlights_hits_and_filters(review_stack: ReviewStack) -> None:
    a = review_stack.archive
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        async with session.get("/archief/zoeken", params={"q": "CAFE e-mail"}) as resp:
            html = await resp.text()
            assert resp.status == 200
        assert "<mark>café</mark>-overleg" in html or "<mark>café-overleg</mark>" in html
        assert "<mark>e-mail</mark>" in html
        async with session.get("/archief/zoeken", params={"q": "begroting", "kamer": a.room,
                                                          "afzender": a.user("sg")}) as resp:
            html = await resp.text()
        assert html.count('class="hit"') == 2
        async with session.get("/archief/zoeken", params={"q": "begroting",
                                                          "van": "morgen"}) as resp:
            assert resp.status == 400
            assert "JJJJ-MM-DD" in await resp.text()


async def test_verify_button_and_access_log_page(review_stack: ReviewStack) -> None:
    a = review_stack.archive
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        async with session.get("/archief/") as resp:
            csrf = csrf_of(await resp.text())
        room_url = f"/archief/kamers/{quote(a.room, safe='')}"
        async with session.post(room_url + "/controleren", data={}) as resp:
            assert resp.status == 403  # no CSRF token
        async with session.post(room_url + "/controleren", data={"csrf": csrf}) as resp:
            html = await resp.text()
            assert resp.status == 200
            assert "intact (" in html
        async with session.get("/archief/toegangslog") as resp:
            html = await resp.text()
        assert "room_events" in html
        assert a.user("archivaris") in html


async def test_ui_errors_are_pages_without_stack_traces(review_stack: ReviewStack) -> None:
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        for path, status in [("/archief/kamers/!onbekend:x", 404),
                             ("/archief/kamers/geen-kamer", 400),
                             ("/archief/kamers/!x:y?van=%%%", 400),
                             ("/archief/gebeurtenissen/$nope", 404),
                             ("/archief/bestaat-niet", 404)]:
            async with session.get(path) as resp:
                text = await resp.text()
                assert resp.status == status, (path, resp.status)
                assert resp.headers["Content-Type"].startswith("text/html")
                assert "Traceback" not in text


async def test_long_rooms_are_paged_in_the_transcript(review_stack: ReviewStack) -> None:
    room_url = f"/archief/kamers/{quote(review_stack.archive.big_room, safe='')}"
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        async with session.get(room_url) as resp:
            html = await resp.text()
        assert html.count('class="msg') == 200
        assert "bericht 0 over" in html
        assert "bericht 200 over" not in html
        next_url = re.search(r'href="([^"]+)">Volgende pagina', html)
        assert next_url
        async with session.get(next_url.group(1).replace("&amp;", "&")) as resp:
            html = await resp.text()
        assert "bericht 200 over" in html
        assert "bericht 199 over" not in html
        assert "Naar het begin" in html


async def test_guessing_passwords_is_throttled(review_stack: ReviewStack) -> None:
    throttle = review_stack.app[THROTTLE]
    try:
        async with await browser(review_stack) as session:
            # guesses for an account that does not exist (Synapse would rate-limit a
            # real one by itself, which would slow down the other tests)
            statuses = [(await login(session, review_stack, "indringer",
                                     password=f"gok-{n}")).status for n in range(11)]
            assert set(statuses[:FAILED_LOGIN_LIMIT]) <= {401, 429}
            assert statuses[-1] == 429
            # the right password does not get through while the address is blocked
            assert (await login(session, review_stack, "archivaris")).status == 429
    finally:
        throttle.succeeded("127.0.0.1")


async def test_completeness_page(review_stack: ReviewStack) -> None:
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        async with session.get("/archief/volledigheid") as resp:
            html = await resp.text()
            assert resp.status == 200
        assert "Volledigheid" in html
        assert "grootboek" in html
