"""``manifest.json`` (every file's SHA-256 and size, the request, the exporter, the
archive's verify result) and its detached Ed25519 signature ``manifest.sig`` (64 raw bytes)
by the archive's checkpoint signing key.

Verify with the PEM key that ``rijkschat-archiver export-public-key`` prints, e.g.
``openssl pkeyutl -verify -pubin -inkey archive.pem -rawin -in manifest.json
-sigfile manifest.sig``, or :func:`verify_manifest`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .model import PackageInput

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
FORMAT = "rijkschat-woo-manifest-v1"


@dataclass(frozen=True)
class FileEntry:
    name: str
    sha256: str
    size: int
    media_type: str


def build_manifest(
    pkg: PackageInput,
    files: Sequence[FileEntry],
    documents: int,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    req = pkg.request
    body: dict[str, Any] = {
        "format": FORMAT,
        "request": {
            "reference": req.reference,
            "title": req.title,
            "received": req.received.isoformat(),
            "scope": req.scope,
        },
        "exported_by": pkg.export.exporter,
        "exported_at": pkg.export.exported_at.isoformat(),
        "documents": documents,
        "files": [
            {"name": f.name, "sha256": f.sha256, "size": f.size, "media_type": f.media_type}
            for f in files
        ],
        "archive_verification": dict(pkg.verify),
        "signature": {
            "file": SIGNATURE_NAME,
            "algorithm": "Ed25519",
            "key": "the archive's checkpoint signing key (rijkschat-archiver export-public-key)",
        },
    }
    if extra:
        body.update(extra)
    return (json.dumps(body, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode()


def verify_manifest(public_key_pem: str | bytes, manifest: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the archive key's Ed25519 signature over ``manifest``."""
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        return False
    return True
