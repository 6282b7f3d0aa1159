"""The PAdES signature on the publication PDF (pyHanko).

The key and its self-signed X.509 certificate live beside the archive's other keys (0600,
outside the database), created once by :func:`ensure_pdf_signing_identity`; the
integration passes the archive's key directory. The certificate is self-signed: a reader
checks it against the certificate the archive publishes (``woo-pdf-signing.crt``)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY_FILE = "woo-pdf-signing.key"
CERT_FILE = "woo-pdf-signing.crt"
SIGNATURE_FIELD = "Woo-publicatie"


class PdfSigningError(RuntimeError):
    """The PDF signing key or certificate is missing, unreadable or too open."""


@dataclass(frozen=True)
class PdfSigningIdentity:
    key_path: Path
    cert_path: Path

    @property
    def certificate_pem(self) -> bytes:
        return self.cert_path.read_bytes()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def ensure_pdf_signing_identity(
    directory: Path, common_name: str = "Rijkschat archief - Woo-publicaties"
) -> PdfSigningIdentity:
    """Load, or create once, the PDF signing key (ECDSA P-256, 0600) and its self-signed
    certificate in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if key_path.exists() != cert_path.exists():
        raise PdfSigningError(
            f"only one of {key_path} and {cert_path} exists; restore the other or remove both"
        )
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Rijkschat"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PdfSigningError(f"{key_path} is readable by others (mode {mode:o}); chmod 600 it")
    return PdfSigningIdentity(key_path, cert_path)


def sign_pdf(
    identity: PdfSigningIdentity,
    src: BinaryIO,
    out: BinaryIO,
    reason: str,
    title: str | None = None,
) -> None:
    """Write ``src`` with a PAdES baseline-B signature to ``out`` (an incremental update,
    the original bytes are copied in chunks). pyHanko rewrites the XMP metadata; the PDF/A-2B
    identification and the title are carried into the new packet."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.metadata import model as xmp
    from pyhanko.sign import fields, signers

    try:
        signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
            str(identity.key_path), str(identity.cert_path)
        )
    except Exception as exc:  # pyHanko raises several types for unreadable files
        raise PdfSigningError(f"cannot load the PDF signing key: {exc}") from exc
    if signer is None:
        raise PdfSigningError("cannot load the PDF signing key")
    sig_meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location="Rijkschat archief",
    )
    writer = IncrementalPdfFileWriter(src, strict=False)
    meta = writer.document_meta
    meta.title = title
    meta.author = "Rijkschat archief"
    meta.creator = "Rijkschat Woo-publicatiepakket"
    pdfaid = xmp.NS["pdfaid"]
    meta.xmp_extra.append(
        xmp.XmpStructure(
            {
                xmp.ExpandedName(pdfaid, "part"): xmp.XmpValue("2"),
                xmp.ExpandedName(pdfaid, "conformance"): xmp.XmpValue("B"),
            }
        )
    )
    signers.sign_pdf(writer, sig_meta, signer=signer, output=out)
