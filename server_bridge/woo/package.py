"""The Woo publication package: a ZIP with the signed PDF, the inventory list (xlsx and
csv), the PDF signing certificate, ``manifest.json`` and ``manifest.sig``.

The documents come from an iterator and are consumed once: each is laid out in the PDF and
written to the inventory as it arrives. The PDF and the inventory are assembled in a
temporary directory, then copied in chunks into the ZIP, which is written to any binary
stream (seekable or not) while every file's SHA-256 is computed on the way."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .inventory import InventoryWriter, inventory_names
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry, build_manifest
from .model import PackageInput, WooDocument, WooModelError
from .pdf import PdfBuilder, pdf_file_name
from .signing import PdfSigningIdentity, sign_pdf

CHUNK = 1 << 16
CERT_NAME = "pdf-ondertekening-certificaat.pem"
ZIP_MEDIA_TYPE = "application/zip"
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ManifestSigner = Callable[[bytes], bytes]


@dataclass(frozen=True)
class PackageResult:
    documents: int
    files: tuple[FileEntry, ...]
    manifest: bytes
    signature: bytes


def check_reference(reference: str) -> None:
    if not _REFERENCE.fullmatch(reference) or ".." in reference:
        raise WooModelError(
            f"reference {reference!r} cannot name a file: use letters, digits, '.', '_', '-'"
        )


def _add_file(
    zf: zipfile.ZipFile, name: str, path: Path, media_type: str, compress: bool
) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    return FileEntry(name, digest.hexdigest(), size, media_type)


def _add_bytes(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build_package(
    pkg: PackageInput,
    documents: Iterable[WooDocument],
    out: BinaryIO,
    *,
    sign_manifest: ManifestSigner,
    pdf_identity: PdfSigningIdentity,
    workdir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    font_dir: Path | None = None,
) -> PackageResult:
    """Write the package for ``documents`` (in time order) as a ZIP to ``out``.

    ``sign_manifest`` is the archive's detached signer (``Archive.sign_detached``).
    Synchronous and CPU-bound, and pyHanko runs an event loop of its own: call it from a
    worker thread (``asyncio.to_thread``), never on the event loop.
    Raises :class:`WooModelError` on inconsistent input before anything reaches ``out``."""
    reference = pkg.request.reference
    check_reference(reference)
    xlsx_name, csv_name = inventory_names(reference)
    pdf_name = pdf_file_name(reference)
    with tempfile.TemporaryDirectory(prefix="woo-", dir=workdir) as tmp_name:
        tmp = Path(tmp_name)
        builder = PdfBuilder(pkg, font_dir)
        inventory = InventoryWriter(tmp / xlsx_name, tmp / csv_name, reference)
        try:
            for count, doc in enumerate(documents, start=1):
                builder.add(doc)
                inventory.add(doc)
                if progress is not None:
                    progress(count)
        finally:
            inventory.close()
        unsigned = tmp / "unsigned.pdf"
        builder.write(unsigned)
        del builder  # fpdf2 holds the pages until output; let them go
        signed = tmp / pdf_name
        with unsigned.open("rb") as src, signed.open("wb") as dst:
            sign_pdf(
                pdf_identity,
                src,
                dst,
                reason=f"Woo-besluit {reference}",
                title=f"Bijlage bij Woo-besluit {reference}",
            )
        unsigned.unlink()
        cert = tmp / CERT_NAME
        shutil.copyfile(pdf_identity.cert_path, cert)
        with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
            files = (
                _add_file(zf, pdf_name, signed, "application/pdf", compress=False),
                _add_file(
                    zf,
                    xlsx_name,
                    tmp / xlsx_name,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    compress=False,
                ),
                _add_file(zf, csv_name, tmp / csv_name, "text/csv", compress=True),
                _add_file(zf, CERT_NAME, cert, "application/x-pem-file", compress=True),
            )
            extra: dict[str, Any] = {
                "pdf_signature": {
                    "file": pdf_name,
                    "type": "PAdES baseline B (ECDSA P-256, SHA-256)",
                    "certificate": CERT_NAME,
                }
            }
            manifest = build_manifest(pkg, files, inventory.count, extra)
            signature = sign_manifest(manifest)
            _add_bytes(zf, MANIFEST_NAME, manifest)
            _add_bytes(zf, SIGNATURE_NAME, signature)
    return PackageResult(inventory.count, files, manifest, signature)
