"""Bad builder input is refused before anything is written; the PDF signing identity's
custody; and a control that the leak checks of test_package do see covered text."""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import pypdf
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fpdf import FPDF

from server_bridge.woo.manifest import verify_manifest
from server_bridge.woo.model import Assessment, Span, WooModelError, WooRequestInfo
from server_bridge.woo.package import build_package
from server_bridge.woo.pdf import find_font_dir
from server_bridge.woo.signing import (
    CERT_FILE,
    KEY_FILE,
    PdfSigningError,
    PdfSigningIdentity,
    ensure_pdf_signing_identity,
)

from .conftest import SECRET_OPINION, package_input, sample_documents


def _build(docs: list, pdf_identity: PdfSigningIdentity, tmp_path: Path, **kw: object) -> bytes:  # type: ignore[type-arg]
    out = io.BytesIO()
    signed: list[bytes] = []

    def sign(data: bytes) -> bytes:
        signed.append(data)
        return b"x" * 64

    pkg = kw.pop("pkg", package_input())
    with pytest.raises(WooModelError) as info:
        build_package(
            pkg,  # type: ignore[arg-type]
            iter(docs),
            out,
            sign_manifest=sign,
            pdf_identity=pdf_identity,
            workdir=tmp_path,
        )
    assert out.getvalue() == b""  # nothing reached the output
    assert signed == []
    assert list(tmp_path.glob("woo-*")) == []  # the temporary files are gone
    return str(info.value).encode()


@pytest.mark.parametrize(
    ("number", "assessment", "message"),
    [
        ("0001", Assessment("openbaar", ("5.9.9",)), "unknown ground '5.9.9'"),
        ("0001", Assessment("niet_openbaar", ()), "needs at least one ground"),
        ("0001", Assessment("deels_openbaar", ("5.1.2e",), (Span(0, 999, "5.1.2e"),)), "outside"),
        ("0001", Assessment("deels_openbaar", ("5.1.2e",), (Span(5, 2, "5.1.2e"),)), "outside"),
        ("0002", Assessment("deels_openbaar", ("5.1.2e",), (Span(0, 3, "geen"),)), "unknown"),
        ("0002", Assessment("misschien", ("5.2",)), "unknown decision"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_assessment_is_refused(
    number: str,
    assessment: Assessment,
    message: str,
    pdf_identity: PdfSigningIdentity,
    tmp_path: Path,
) -> None:
    docs = [
        replace(d, assessment=assessment) if d.number == number else d for d in sample_documents()
    ]
    error = _build(docs, pdf_identity, tmp_path)
    assert message.encode() in error
    assert number.encode() in error


def test_an_unknown_ground_on_a_sender_name_is_refused(
    pdf_identity: PdfSigningIdentity, tmp_path: Path
) -> None:
    docs = sample_documents()
    docs[0] = replace(docs[0], sender_name_ground="9.9")
    assert b"unknown ground '9.9'" in _build(docs, pdf_identity, tmp_path)


def test_documents_out_of_time_order_are_refused(
    pdf_identity: PdfSigningIdentity, tmp_path: Path
) -> None:
    docs = sample_documents()
    docs[2], docs[3] = docs[3], docs[2]
    assert b"out of time order" in _build(docs, pdf_identity, tmp_path)


@pytest.mark.parametrize("reference", ["../etc", "a/b", "", "2026 0412", "x" * 65])
def test_a_reference_that_cannot_name_a_file_is_refused(
    reference: str, pdf_identity: PdfSigningIdentity, tmp_path: Path
) -> None:
    pkg = package_input()
    pkg = replace(pkg, request=WooRequestInfo(reference, "t", pkg.request.received, "s"))
    assert b"cannot name a file" in _build(sample_documents(), pdf_identity, tmp_path, pkg=pkg)


def test_the_signing_identity_is_created_once_and_kept_private(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    first = ensure_pdf_signing_identity(directory)
    assert (directory / KEY_FILE).stat().st_mode & 0o777 == 0o600
    cert = first.certificate_pem
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----")
    again = ensure_pdf_signing_identity(directory)
    assert again.certificate_pem == cert  # not regenerated
    os.chmod(directory / KEY_FILE, 0o644)
    with pytest.raises(PdfSigningError, match="readable by others"):
        ensure_pdf_signing_identity(directory)
    os.chmod(directory / KEY_FILE, 0o600)
    (directory / CERT_FILE).unlink()
    with pytest.raises(PdfSigningError, match="only one of"):
        ensure_pdf_signing_identity(directory)
    assert not (directory / CERT_FILE).exists()  # nothing silently regenerated


def test_the_leak_check_sees_text_drawn_under_a_box() -> None:
    """Control: the naive way (draw, then cover) is caught by the same text extraction
    test_package relies on, even though the raw bytes only hold glyph ids."""
    pdf = FPDF()
    pdf.add_font("DejaVu", "", str(find_font_dir() / "DejaVuSans.ttf"))
    pdf.add_page()
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(80, 6, SECRET_OPINION)
    pdf.set_fill_color(0, 0, 0)
    pdf.rect(10, 10, 80, 6, style="F")
    data = bytes(pdf.output())
    assert SECRET_OPINION.encode() not in data  # raw bytes alone would miss it
    text = pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert SECRET_OPINION in text


class _Pipe(io.RawIOBase):
    """A write-only, unseekable sink, like a streamed HTTP response body."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("unseekable")

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)


def test_the_zip_streams_to_an_unseekable_sink(
    pdf_identity: PdfSigningIdentity, tmp_path: Path
) -> None:

    key = Ed25519PrivateKey.generate()
    sink = _Pipe()
    result = build_package(
        package_input(),
        iter(sample_documents()),
        sink,  # type: ignore[arg-type]
        sign_manifest=key.sign,
        pdf_identity=pdf_identity,
        workdir=tmp_path,
    )
    assert len(sink.chunks) > 3
    with zipfile.ZipFile(io.BytesIO(b"".join(sink.chunks))) as zf:
        assert zf.testzip() is None
        manifest = zf.read("manifest.json")
        assert manifest == result.manifest
        assert {f["name"] for f in json.loads(manifest)["files"]} <= set(zf.namelist())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_manifest(pem, result.manifest, result.signature)
    assert list(tmp_path.glob("woo-*")) == []  # the temporary directory is gone


def test_an_unreadable_image_is_listed_not_embedded(
    pdf_identity: PdfSigningIdentity, tmp_path: Path
) -> None:
    """Bytes that claim to be an image but are not: the file is listed with its hash."""
    docs = sample_documents()
    image_doc = next(d for d in docs if d.number == "0008")
    assert image_doc.attachment is not None
    broken = replace(image_doc.attachment, image_bytes=b"\x89PNG not really")
    docs[docs.index(image_doc)] = replace(image_doc, attachment=broken)
    out = io.BytesIO()
    build_package(
        package_input(),
        iter(docs),
        out,
        sign_manifest=Ed25519PrivateKey.generate().sign,
        pdf_identity=pdf_identity,
        workdir=tmp_path,
    )
    with zipfile.ZipFile(out) as zf:
        reader = pypdf.PdfReader(io.BytesIO(zf.read("besluit-bijlage-2026-0412.pdf")))
    assert [img for page in reader.pages for img in page.images] == []
    text = "".join(page.extract_text() for page in reader.pages).replace("\n", "")
    assert "kaart-zuidas.png" in text
    assert broken.sha256 in text
