"""The Woo publication package end to end: a real archive (the showcase room: plain text,
formatted text, an edit, a reply, a redaction, reactions, an image and a PDF attachment),
assessments of every kind through the API, the export through the running bridge, and the
ZIP taken apart the way a recipient would."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import secrets
import stat
import zipfile
from pathlib import Path
from typing import Any

import pypdf
import pytest

from archiver_bot.archive import ArchivePaths
from server_bridge.woo.manifest import verify_manifest
from server_bridge.woo.package import CERT_NAME
from tests.review.conftest import PNG_BYTES, ReviewStack
from tests.review.test_ui import browser, csrf_of, login
from tests.review.test_woo_api import call, case, create
from tests.woo.test_package import _deflate_chunks, encodings

#: strings that are withheld by the assessments below (or by the sender's redaction, or as
#: the name of an official who is not a key official)
WITHHELD = (
    "de cijfers",
    "om 11 uur",
    "Wie leidt de werkgroep",
    "Het vertrouwelijke memo",
    "nota begroting",
    "Ambtenaar Een",
)
PUBLIC = (
    "Goedemorgen, de begroting staat op de agenda.",
    "Akkoord, ik breng",
    "Vergadering om 10 uur",
    "Zie het *concept* voor de begroting",
    "café-overleg",
    "Minister van Testzaken",
    "grafiek.png",
    hashlib.sha256(PNG_BYTES).hexdigest(),
)


def assert_clean(where: str, data: bytes) -> None:
    lowered = data.lower()
    for secret in WITHHELD:
        for needle in encodings(secret):
            assert needle.lower() not in lowered, f"withheld {secret!r} found in {where}"


async def post_raw(stack: ReviewStack, path: str, who: str | None = "archivaris"
                   ) -> tuple[int, bytes, dict[str, str]]:
    headers = {"X-Rijkschat-Purpose": "Woo-export-test"}
    if who is not None:
        headers["Authorization"] = f"Bearer {stack.tokens.get(who, who)}"
    async with stack.session.post(stack.url + path, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def assess(stack: ReviewStack, request_id: str, label: str, body: dict[str, Any]) -> None:
    from urllib.parse import quote

    event = quote(stack.archive.ids[label], safe="")
    status, answer = await call(
        stack, "PUT", f"/api/v1/woo/requests/{request_id}/assessments/{event}", body
    )
    assert status == 200, (label, answer)


def _span(text: str, part: str, ground: str) -> dict[str, Any]:
    start = text.index(part)
    return {"start": start, "end": start + len(part), "ground": ground}


async def assessed_request(
    stack: ReviewStack, overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    made = await create(stack)
    body = await case(stack, made["id"])
    texts = {d["event_id"]: d["text"] for d in body["documents"]}
    ids = stack.archive.ids
    reply_text = texts[ids["reply"]]
    edit_text = texts[ids["edit"]]
    plan: dict[str, dict[str, Any]] = {
        "first": {"decision": "openbaar"},
        "reply": {"decision": "deels_openbaar", "grounds": ["5.1.2i"],
                  "spans": [_span(reply_text, "de cijfers", "5.1.2i")]},
        "script": {"decision": "openbaar"},
        "img": {"decision": "openbaar"},
        "formatted": {"decision": "openbaar"},
        "edited": {"decision": "openbaar"},
        "edit": {"decision": "deels_openbaar", "grounds": ["5.1.2e"],
                 "spans": [_span(edit_text, "om 11 uur", "5.1.2e")]},
        "redacted": {"decision": "openbaar"},
        "thread-root": {"decision": "niet_openbaar", "grounds": ["5.2"]},
        "thread-reply": {"decision": "openbaar"},
        "pdf": {"decision": "niet_openbaar", "grounds": ["5.1.2i"]},
        "png": {"decision": "openbaar"},
        "undecryptable": {"decision": "niet_openbaar", "grounds": ["5.1.2e"]},
        "cafe": {"decision": "openbaar"},
    }
    plan.update(overrides or {})
    for label, assessment in plan.items():
        await assess(stack, made["id"], label, assessment)
    body = await case(stack, made["id"])
    assert body["assessed"] == len(body["documents"])
    return body


async def export(stack: ReviewStack, request_id: str) -> tuple[bytes, dict[str, str]]:
    status, data, headers = await post_raw(stack, f"/api/v1/woo/requests/{request_id}/export")
    assert status == 200, data[:500]
    return data, headers


async def access_entries(stack: ReviewStack, action: str) -> list[dict[str, Any]]:
    status, body = await call(stack, "GET", "/api/v1/audit?limit=1000")
    assert status == 200, body
    return [e for e in body["entries"] if e["action"] == action]


@pytest.fixture(scope="module")
async def exported(review_stack: ReviewStack) -> dict[str, Any]:
    body = await assessed_request(review_stack)
    data, headers = await export(review_stack, body["id"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        files = {name: zf.read(name) for name in zf.namelist()}
    return {"case": body, "zip": data, "headers": headers, "files": files,
            "ref": body["reference"]}


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_the_export_is_a_zip_with_the_package(exported: dict[str, Any]) -> None:
    ref = exported["ref"]
    headers = exported["headers"]
    assert headers["Content-Type"] == "application/zip"
    assert headers["Content-Disposition"] == f'attachment; filename="woo-{ref}.zip"'
    assert int(headers["Content-Length"]) == len(exported["zip"])
    assert headers["X-Rijkschat-Documents"] == "13"  # 14 in scope, the edit shown with its message
    assert set(exported["files"]) == {
        f"besluit-bijlage-{ref}.pdf", f"inventarislijst-{ref}.xlsx",
        f"inventarislijst-{ref}.csv", CERT_NAME, "manifest.json", "manifest.sig",
    }


async def test_the_pdf_shows_the_public_parts_and_nothing_withheld(
    exported: dict[str, Any],
) -> None:
    ref = exported["ref"]
    data = exported["files"][f"besluit-bijlage-{ref}.pdf"]
    text = pdf_text(data)
    flat = " ".join(text.split())
    for public in PUBLIC:
        assert public in flat, public
    for code in ("5.1.2i", "5.1.2e", "5.2"):
        assert code in text
    assert "Bericht verwijderd door de afzender" in flat
    assert "In antwoord op document 0001" in flat
    for secret in WITHHELD:
        assert secret not in flat, secret
    assert_clean("the PDF", data)
    for chunk in _deflate_chunks(data):
        assert_clean("a deflated chunk of the PDF", chunk)
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert_clean("the PDF's metadata", repr(reader.metadata).encode())
    # The public image is embedded; the withheld PDF attachment is not (it is only listed).
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1
    for name, content in exported["files"].items():
        assert_clean(name, content)
    with zipfile.ZipFile(io.BytesIO(exported["files"][f"inventarislijst-{ref}.xlsx"])) as x:
        for inner in x.namelist():
            assert_clean(inner, x.read(inner))


async def test_the_inventory_rows_match_the_assessments(exported: dict[str, Any]) -> None:
    ref = exported["ref"]
    table = list(csv.reader(
        io.StringIO(exported["files"][f"inventarislijst-{ref}.csv"].decode("utf-8-sig")),
        delimiter=";",
    ))
    rows = table[1:]
    assert [r[0] for r in rows] == [f"{n:04d}" for n in range(1, 14)]
    # documents in time order, the edit folded into the message it edits
    by_label = dict(zip(
        ["first", "reply", "script", "img", "formatted", "edited", "redacted", "thread-root",
         "thread-reply", "pdf", "png", "undecryptable", "cafe"], rows, strict=True))
    assert all(r[3] == "Kabinetsberaad" for r in rows)
    assert by_label["first"][4:] == ["sleutelfunctionaris", "openbaar", "", "ja"]
    assert by_label["reply"][4:] == ["sleutelfunctionaris", "deels openbaar", "5.1.2i", "ja"]
    # the sender's name withheld (an official, not a key official) on 5.1.2e
    assert by_label["script"][4:] == ["ambtenaar", "openbaar", "5.1.2e", "ja"]
    assert by_label["edited"][5:] == ["deels openbaar", "5.1.2e", "ja"]
    assert by_label["thread-root"][5:] == ["niet openbaar", "5.2", "nee"]
    assert by_label["pdf"][2] == "bijlage"
    assert by_label["pdf"][5:] == ["niet openbaar", "5.1.2i", "nee"]
    assert by_label["png"][2] == "bijlage"
    assert by_label["undecryptable"][5:] == ["niet openbaar", "5.1.2e", "nee"]


async def test_the_manifest_and_pdf_signatures_verify(
    exported: dict[str, Any], review_stack: ReviewStack,
) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    files = exported["files"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["request"]["reference"] == exported["ref"]
    assert manifest["exported_by"] == review_stack.archive.user("archivaris")
    assert manifest["documents"] == 13
    verification = manifest["archive_verification"]
    assert verification["ok"] is True
    assert set(verification["rooms"]) == {review_stack.archive.room}
    for entry in manifest["files"]:
        assert entry["size"] == len(files[entry["name"]])
        assert entry["sha256"] == hashlib.sha256(files[entry["name"]]).hexdigest()
    # the archive's public key (what export-public-key prints) verifies the signature
    data_dir = review_stack.archive.data_dir
    proc = await asyncio.create_subprocess_exec(
        str(Path(__import__("sys").executable)), "-c",
        "import sys; from archiver_bot.archive.cli import export_public_key_main; "
        "sys.exit(export_public_key_main(sys.argv[1:]))", "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    pem, _ = await proc.communicate()
    assert proc.returncode == 0
    assert verify_manifest(pem, files["manifest.json"], files["manifest.sig"])
    assert not verify_manifest(pem, files["manifest.json"].replace(b'"ok": true', b'"ok": 1'),
                               files["manifest.sig"])
    # the PAdES signature validates against the certificate in the archive's custody
    pades = ArchivePaths.for_data_dir(data_dir).root / "pades"
    assert stat.S_IMODE(pades.stat().st_mode) == 0o700
    assert stat.S_IMODE((pades / "woo-pdf-signing.key").stat().st_mode) == 0o600
    assert files[CERT_NAME] == (pades / "woo-pdf-signing.crt").read_bytes()
    context = ValidationContext(
        trust_roots=[load_cert_from_pemder(str(pades / "woo-pdf-signing.crt"))]
    )
    reader = PdfFileReader(io.BytesIO(files[f"besluit-bijlage-{exported['ref']}.pdf"]))
    (sig,) = reader.embedded_signatures
    status = await async_validate_pdf_signature(sig, context)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.bottom_line


async def test_the_export_is_in_the_access_log(
    exported: dict[str, Any], review_stack: ReviewStack,
) -> None:
    entries = await access_entries(review_stack, "woo_export")
    mine = [e for e in entries if e["details"].get("reference") == exported["ref"]]
    assert len(mine) == 1
    assert mine[0]["user_id"] == review_stack.archive.user("archivaris")
    assert mine[0]["details"]["request"] == exported["case"]["id"]
    assert mine[0]["details"]["documents"] == 13
    assert "Woo-export-test" in mine[0]["purpose"]


async def test_authz_unknown_and_unassessed_requests(review_stack: ReviewStack) -> None:
    stack = review_stack
    made = await create(stack)
    path = f"/api/v1/woo/requests/{made['id']}/export"
    before = len(await access_entries(stack, "woo_export"))
    status, body, _ = await post_raw(stack, path, who=None)
    assert status == 401, body
    status, body, _ = await post_raw(stack, path, who="not-a-token")
    assert status == 401, body
    for who in ("minister", "ambtenaar1"):
        status, body, _ = await post_raw(stack, path, who=who)
        assert status == 403, body
        assert json.loads(body)["errcode"] == "M_FORBIDDEN"
    for unknown in ("0123456789abcdef", "nonsense"):
        status, body, _ = await post_raw(stack, f"/api/v1/woo/requests/{unknown}/export")
        assert status == 404, body
    # documents not yet assessed: refused, nothing exported
    status, body, _ = await post_raw(stack, path)
    assert status == 409, body
    assert "assess" in json.loads(body)["error"]
    assert len(await access_entries(stack, "woo_export")) == before
    exports = stack.settings.data_dir / "woo-exports"
    assert not exports.exists() or not list(exports.iterdir())


async def test_the_ui_job_with_csrf_status_and_download(review_stack: ReviewStack) -> None:
    stack = review_stack
    body = await assessed_request(stack)
    start = f"/archief/woo/{body['id']}/publicatiepakket"
    async with await browser(stack) as session:
        async with session.post(start, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/archief/inloggen"
        await login(session, stack, "archivaris")
        async with session.get(f"/archief/woo/{body['id']}") as resp:
            page = await resp.text()
        assert "Publicatiepakket maken" in page
        csrf = csrf_of(page)
        for bad in ({}, {"csrf": "fout"}):
            async with session.post(start, data=bad, allow_redirects=False) as resp:
                assert resp.status == 403
        async with session.post(start, data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
            job_url = resp.headers["Location"]
        assert job_url.startswith("/archief/woo-export/")
        state = ""
        for _ in range(240):  # poll the status page, generous deadline (~120 s)
            async with session.get(job_url) as resp:
                assert resp.status == 200
                page = await resp.text()
            state = page.split('data-state="', 1)[1].split('"', 1)[0]
            if state != "bezig":
                break
            await asyncio.sleep(0.5)
        assert state == "klaar", page
        assert f"{job_url}/download" in page
        async with session.get(f"{job_url}/download") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/zip"
            data = await resp.read()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert f"besluit-bijlage-{body['reference']}.pdf" in zf.namelist()
            assert_clean("the job's ZIP", zf.read(f"besluit-bijlage-{body['reference']}.pdf"))
    # without a session the download is refused
    async with await browser(stack) as other:
        async with other.get(f"{job_url}/download", allow_redirects=False) as resp:
            assert resp.status == 303
    entries = await access_entries(stack, "woo_export")
    assert any(e["details"].get("reference") == body["reference"] for e in entries)


async def test_an_unknown_request_starts_no_job(review_stack: ReviewStack) -> None:
    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        async with session.get("/archief/woo") as resp:
            csrf = csrf_of(await resp.text())
        async with session.post(f"/archief/woo/{secrets.token_hex(8)}/publicatiepakket",
                                data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 404


async def test_a_withheld_edit_is_withheld_under_a_public_message(
    review_stack: ReviewStack,
) -> None:
    body = await assessed_request(review_stack, {
        "edit": {"decision": "niet_openbaar", "grounds": ["5.2"]},
    })
    data, _ = await export(review_stack, body["id"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pdf = zf.read(f"besluit-bijlage-{body['reference']}.pdf")
        table = list(csv.reader(io.StringIO(
            zf.read(f"inventarislijst-{body['reference']}.csv").decode("utf-8-sig")),
            delimiter=";"))
    flat = " ".join(pdf_text(pdf).split())
    assert "Vergadering om 10 uur" in flat  # the message itself is public
    assert "Vergadering om 11 uur" not in flat
    assert "om 11 uur" not in flat
    assert_clean("the PDF", pdf)
    edited = table[1:][5]
    # the edit's ground, and 5.1.2e for the reacting official's name
    assert edited[5:] == ["deels openbaar", "5.2, 5.1.2e", "ja"]


def test_file_names_from_references() -> None:
    from server_bridge.woo.export import file_reference, zip_name

    assert zip_name("2026-0412") == "woo-2026-0412.zip"
    assert file_reference("2026/12") == "2026-12"
    assert file_reference("../x") == "x"
    assert zip_name("a\"b") == "woo-a-b.zip"


async def test_reading_the_case_in_small_chunks_gives_the_same_package(
    review_stack: ReviewStack, exported: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export reads documents a chunk at a time; edits, replies and reactions that cross
    a chunk border must come out exactly as with one chunk."""
    import server_bridge.woo.export as woo_export

    monkeypatch.setattr(woo_export, "CHUNK", 2)
    data, headers = await export(review_stack, exported["case"]["id"])
    assert headers["X-Rijkschat-Documents"] == exported["headers"]["X-Rijkschat-Documents"]
    ref = exported["ref"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    assert files[f"inventarislijst-{ref}.csv"] == exported["files"][f"inventarislijst-{ref}.csv"]

    def pages(pdf: bytes) -> list[str]:
        # The cover carries the export's time; every document page must be identical.
        return [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages][1:]

    name = f"besluit-bijlage-{ref}.pdf"
    assert pages(files[name]), "the package has no document pages after the cover"
    assert pages(files[name]) == pages(exported["files"][name])
