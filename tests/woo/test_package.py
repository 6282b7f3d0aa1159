"""The publication package end to end: built from the sample documents, signed by a real
archive's checkpoint key, then taken apart the way a recipient (or an attacker looking for
withheld text) would."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pypdf
import pytest
from openpyxl import load_workbook
from pypdf.generic import IndirectObject, StreamObject

from archiver_bot.archive import ArchivePaths, open_archive
from server_bridge.woo.inventory import HEADER
from server_bridge.woo.manifest import verify_manifest
from server_bridge.woo.package import CERT_NAME, build_package
from server_bridge.woo.signing import PdfSigningIdentity

from .conftest import GROUNDS, PUBLIC, REFERENCE, WITHHELD, package_input, sample_documents

PDF_NAME = f"besluit-bijlage-{REFERENCE}.pdf"
XLSX_NAME = f"inventarislijst-{REFERENCE}.xlsx"
CSV_NAME = f"inventarislijst-{REFERENCE}.csv"


def encodings(secret: str) -> list[bytes]:
    """The ways a string can sit in a PDF or office file's bytes."""
    out = []
    for enc in ("utf-8", "latin-1", "utf-16-be", "utf-16-le"):
        raw = secret.encode(enc)
        out += [raw, raw.hex().encode(), raw.hex().upper().encode()]
    # a short distinctive piece too, in case a layout split the string
    out.append(secret[:12].encode("utf-8"))
    out.append(secret[:12].encode("utf-16-be"))
    return out


def assert_clean(where: str, data: bytes) -> None:
    lowered = data.lower()
    for secret in WITHHELD:
        for needle in encodings(secret):
            assert needle.lower() not in lowered, f"withheld {secret!r} found in {where}"


@pytest.fixture
async def package(tmp_path: Path, pdf_identity: PdfSigningIdentity) -> dict[str, Any]:
    paths = ArchivePaths.for_data_dir(tmp_path / "data")
    archive = await open_archive(paths)
    try:
        out = io.BytesIO()
        seen: list[int] = []
        # synchronous and CPU-bound (pyHanko runs its own event loop): a worker thread
        result = await asyncio.to_thread(
            build_package,
            package_input(),
            iter(sample_documents()),
            out,
            sign_manifest=archive.sign_detached,
            pdf_identity=pdf_identity,
            workdir=tmp_path,
            progress=seen.append,
        )
        pem = archive.public_key_pem
    finally:
        await archive.close()
    zip_path = tmp_path / f"woo-{REFERENCE}.zip"
    zip_path.write_bytes(out.getvalue())
    return {
        "zip": zip_path,
        "result": result,
        "progress": seen,
        "pem": pem,
        "data_dir": tmp_path / "data",
    }


def members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.testzip() is None
        return {name: zf.read(name) for name in zf.namelist()}


async def test_the_zip_holds_the_files_and_a_verifiable_manifest(
    package: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = members(package["zip"])
    assert set(files) == {
        PDF_NAME,
        XLSX_NAME,
        CSV_NAME,
        CERT_NAME,
        "manifest.json",
        "manifest.sig",
    }
    assert package["progress"] == list(range(1, 13))
    manifest = json.loads(files["manifest.json"])
    assert manifest["request"]["reference"] == REFERENCE
    assert manifest["exported_by"] == "@archivaris:rijk.example"
    assert manifest["exported_at"].startswith("2026-12-01T12:00:00")
    assert manifest["archive_verification"]["ok"] is True
    assert manifest["documents"] == 12
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == {PDF_NAME, XLSX_NAME, CSV_NAME, CERT_NAME}
    import hashlib

    for name, entry in listed.items():
        assert entry["size"] == len(files[name])
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()
    # the signature verifies with the key export-public-key prints, and with nothing else
    from archiver_bot.archive.cli import export_public_key_main

    rc = await asyncio.to_thread(export_public_key_main, ["--data-dir", str(package["data_dir"])])
    assert rc == 0
    exported = capsys.readouterr().out
    assert exported.strip() == package["pem"].strip()
    assert verify_manifest(exported, files["manifest.json"], files["manifest.sig"])
    tampered = files["manifest.json"].replace(b"2026-0412", b"2026-0413")
    assert not verify_manifest(exported, tampered, files["manifest.sig"])
    if shutil.which("openssl"):
        (tmp_path / "pub.pem").write_text(exported)
        (tmp_path / "manifest.json").write_bytes(files["manifest.json"])
        (tmp_path / "manifest.sig").write_bytes(files["manifest.sig"])
        check = subprocess.run(
            [
                "openssl",
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-rawin",
                "-in",
                "manifest.json",
                "-sigfile",
                "manifest.sig",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_the_pdf_shows_the_public_parts_and_the_grounds(package: dict[str, Any]) -> None:
    data = members(package["zip"])[PDF_NAME]
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = pdf_text(data)
    flat = " ".join(text.split())
    for public in PUBLIC:
        assert " ".join(public.split()) in flat, public
    for n in range(1, 13):
        assert f"Document {n:04d}" in text
    for code in ("5.1.2e", "5.2", "5.1.1c", "5.1.2i"):
        assert code in text
        assert GROUNDS[code][:30] in flat  # the legend spells the grounds out
    assert "Niet openbaar: 5.2" in text
    assert "[Bericht verwijderd door de afzender]" in text
    assert "In antwoord op document 0003" in text
    assert "Afzender: 5.1.2e (beleidsmedewerker)" in flat  # the name is a box
    assert "[U+1F44D] Arjen Adviseur, ✓ 5.1.2e" in flat  # so is a reacting person's
    assert "Bewerkt op 02-03-2026 09:03:30" in text
    # the PDF attachment is listed with its SHA-256; the image is embedded
    docs = {d.number: d for d in sample_documents()}
    pdf_att = docs["0009"].attachment
    assert pdf_att is not None
    assert pdf_att.sha256 in flat.replace(" ", "") or pdf_att.sha256 in text.replace("\n", "")
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1  # only the public image; the withheld one is not in the file
    # every page carries the reference and its number
    for i, page in enumerate(reader.pages, start=1):
        header = page.extract_text()
        assert f"Bijlage bij Woo-besluit {REFERENCE}" in header
        assert f"Pagina {i} van {len(reader.pages)}" in header
    # fonts are embedded, and the file claims PDF/A-2B
    fonts = [
        obj
        for obj in _objects(reader)
        if isinstance(obj, dict) and obj.get("/Type") == "/FontDescriptor"
    ]
    assert fonts
    assert all("/FontFile2" in f for f in fonts)
    xmp = reader.xmp_metadata
    assert xmp is not None
    intents = reader.trailer["/Root"]["/OutputIntents"]
    assert intents[0].get_object()["/OutputConditionIdentifier"] == "sRGB"
    packet = xmp.stream.get_data()
    assert re.search(rb'pdfaid:part(>|=")2', packet), packet
    assert re.search(rb'pdfaid:conformance(>|=")B', packet), packet


def _objects(reader: pypdf.PdfReader) -> list[Any]:
    out = []
    for num, gen in _xref_ids(reader):
        try:
            out.append(reader.get_object(IndirectObject(num, gen, reader)))
        except Exception:  # a free or broken entry: nothing to look at
            continue
    return out


def _xref_ids(reader: pypdf.PdfReader) -> list[tuple[int, int]]:
    ids = []
    for gen, entries in reader.xref.items():
        ids += [(num, gen) for num in entries]
    ids += [(num, 0) for num in reader.xref_objStm]
    return ids


async def test_no_withheld_text_anywhere_in_the_pdf(package: dict[str, Any]) -> None:
    data = members(package["zip"])[PDF_NAME]
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = pdf_text(data)
    for secret in WITHHELD:
        assert secret not in text
        assert secret not in " ".join(text.split())
    # the raw file, every stream decompressed, every object's repr, metadata and outline
    assert_clean("the raw PDF", data)
    objects = _objects(reader)
    assert len(objects) > 20
    for obj in objects:
        if isinstance(obj, StreamObject):
            assert_clean("a stream", obj.get_data())
        assert_clean("an object", repr(obj).encode("utf-8", "replace"))
    for chunk in _deflate_chunks(data):
        assert_clean("a deflated chunk", chunk)
    assert_clean("metadata", repr(reader.metadata).encode())
    assert reader.outline == []
    for page in reader.pages:
        assert "/Annots" not in page or all(
            a.get_object().get("/Subtype") == "/Widget" for a in page["/Annots"]
        )
        assert_clean("a content stream", page.get_contents().get_data())  # type: ignore[union-attr]


def _deflate_chunks(data: bytes) -> list[bytes]:
    """Inflate every zlib stream in the file, whatever object it belongs to."""
    out = []
    pos = 0
    while (start := data.find(b"stream", pos)) != -1:
        body = data[start + 6 :].lstrip(b"\r\n")
        try:
            out.append(zlib.decompressobj().decompress(body))
        except zlib.error:
            pass
        pos = start + 6
    return out


async def test_no_withheld_text_in_the_other_files(package: dict[str, Any]) -> None:
    files = members(package["zip"])
    for name, data in files.items():
        assert_clean(name, data)
        for secret in WITHHELD:
            assert secret not in name
    with zipfile.ZipFile(io.BytesIO(files[XLSX_NAME])) as xlsx:
        for inner in xlsx.namelist():
            assert_clean(f"{XLSX_NAME}/{inner}", xlsx.read(inner))
    with zipfile.ZipFile(package["zip"]) as zf:
        assert zf.comment == b""


def expected_rows() -> list[list[str]]:
    decision = {
        "openbaar": "openbaar",
        "deels_openbaar": "deels openbaar",
        "niet_openbaar": "niet openbaar",
    }
    rows = []
    for d in sample_documents():
        a = d.assessment
        edit_spans = [s.ground for e in d.edits for s in e.spans or ()]
        names = [d.sender_name_ground, *(r.sender_ground for r in d.reactions)]
        names = [] if a.decision == "niet_openbaar" else [g for g in names if g]
        grounds = list(
            dict.fromkeys([*a.grounds, *(s.ground for s in a.spans), *edit_spans, *names])
        )
        rows.append(
            [
                d.number,
                d.ts.strftime("%Y-%m-%d %H:%M:%S"),
                d.kind,
                "Beleid Zuidas",
                d.sender_function,
                decision[a.decision],
                ", ".join(grounds),
                "ja" if a.published else "nee",
            ]
        )
    return rows


async def test_the_inventory_rows_match_the_assessments(package: dict[str, Any]) -> None:
    files = members(package["zip"])
    wb = load_workbook(io.BytesIO(files[XLSX_NAME]), read_only=True)
    rows = [
        [("" if v is None else str(v)) for v in row]
        for row in wb.active.iter_rows(values_only=True)
    ]  # type: ignore[union-attr]
    assert rows[0][0] == f"Inventarislijst Woo-besluit {REFERENCE}"
    assert tuple(rows[1]) == HEADER
    assert rows[2:] == expected_rows()
    table = list(csv.reader(io.StringIO(files[CSV_NAME].decode("utf-8-sig")), delimiter=";"))
    assert tuple(table[0]) == HEADER
    assert table[1:] == expected_rows()
    by_number = {r[0]: r for r in table[1:]}
    assert by_number["0005"][5:] == ["deels openbaar", "5.1.2e", "ja"]
    assert by_number["0006"][5:] == ["niet openbaar", "5.2", "nee"]
    assert by_number["0008"][2] == "bijlage"
    assert by_number["0012"][5:] == ["deels openbaar", "5.1.2e, 5.1.2i", "ja"]
    assert by_number["0002"][4:] == ["beleidsmedewerker", "openbaar", "5.1.2e", "ja"]


async def test_the_pades_signature_validates(package: dict[str, Any]) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    files = members(package["zip"])
    cert_file = package["zip"].parent / "cert.pem"
    cert_file.write_bytes(files[CERT_NAME])
    context = ValidationContext(trust_roots=[load_cert_from_pemder(str(cert_file))])
    reader = PdfFileReader(io.BytesIO(files[PDF_NAME]))
    (sig,) = reader.embedded_signatures
    status = await async_validate_pdf_signature(sig, context)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.bottom_line
    assert status.coverage is not None
    assert status.coverage.name == "ENTIRE_FILE"
    # a byte changed inside the signed range breaks it
    data = bytearray(files[PDF_NAME])
    at = data.index(b"Woo-besluit")
    data[at] = ord("X")
    broken = await async_validate_pdf_signature(
        PdfFileReader(io.BytesIO(bytes(data))).embedded_signatures[0], context
    )
    assert not broken.intact
    # and another archive's certificate is not trusted
    from server_bridge.woo.signing import ensure_pdf_signing_identity

    other = ensure_pdf_signing_identity(package["zip"].parent / "other-keys")
    other_ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(other.cert_path))])
    assert not (await async_validate_pdf_signature(sig, other_ctx)).trusted
