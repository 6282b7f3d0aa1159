"""Archive.sign_detached: a detached Ed25519 signature by the checkpoint key (used for the
Woo package's manifest), verifiable with the key export-public-key prints."""

from __future__ import annotations

import asyncio
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from archiver_bot.archive import Archive, ArchiveError

from .conftest import Backend


async def test_detached_signature_verifies_with_the_exported_key(
    archive: Archive, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    from archiver_bot.archive.cli import export_public_key_main

    data = json.dumps({"format": "rijkschat-woo-manifest-v1", "files": []}).encode()
    signature = archive.sign_detached(data)
    assert len(signature) == 64
    await archive.close()
    rc = await asyncio.to_thread(
        export_public_key_main, ["--data-dir", str(backend.paths.root.parent)]
    )
    assert rc == 0
    key = serialization.load_pem_public_key(capsys.readouterr().out.encode())
    assert isinstance(key, Ed25519PublicKey)
    key.verify(signature, data)
    with pytest.raises(InvalidSignature):
        key.verify(signature, data + b" ")


async def test_detached_signing_refuses_checkpoint_shaped_data(archive: Archive) -> None:
    payload = json.dumps({"v": 1, "archive": "x", "seq": 9, "rooms": {}}).encode()
    with pytest.raises(ArchiveError, match="checkpoint"):
        archive.sign_detached(payload)
