"""Keys kept outside the database: the key-encryption key (KEK), per-key keyring secrets,
the Ed25519 checkpoint signing key, and AES-256-GCM sealing of content under data keys.

Key hierarchy::

    KEK file (kek.key, 0600)  +  keyring/<key id> (32 random bytes, 0600, one per data key)
          └─ HKDF ─► key-wrapping key for that data key id
                        └─ AES-256-GCM wrap ─► data key (DEK), stored wrapped in the database

Destroying a data key deletes its keyring secret and its wrapped copy: an old database
backup then still holds the wrapped DEK, but nothing can unwrap it any more.
A KMS or HSM replaces :class:`FileKeyProvider` by implementing :class:`KeyProvider`.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ArchiveKeyError

log = logging.getLogger(__name__)

NONCE_BYTES = 12
KEY_BYTES = 32
_KEK_HEADER = "rijkschat-archive-kek-v1:"
_SIGNING_HEADER = "rijkschat-archive-signing-ed25519-v1:"
_AAD_PREFIX = b"rijkschat/archive/v1\x00"


class KeyProvider(Protocol):
    """Wraps and destroys data keys; a KMS/HSM can implement this instead of the file."""

    def new_key_ref(self) -> str:
        """Create key material for a new data key and return its reference."""

    def wrap(self, key_ref: str, dek: bytes, aad: bytes) -> bytes:
        """Wrap ``dek`` under the key named ``key_ref``."""

    def unwrap(self, key_ref: str, wrapped: bytes, aad: bytes) -> bytes:
        """Unwrap; raise :class:`ArchiveKeyError` when the key is wrong, missing or destroyed."""

    def destroy(self, key_ref: str) -> None:
        """Destroy the key material of ``key_ref`` for good."""


def _check_private_file(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ArchiveKeyError(
            f"key file {path} has mode {mode:o}; it must be readable by its owner only "
            f"(chmod 600 {path})"
        )


def _write_private_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_tagged(path: Path, header: str) -> bytes:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not text.startswith(header):
        raise ArchiveKeyError(f"key file {path} is not a {header.rstrip(':')} file")
    try:
        raw = base64.b64decode(text[len(header) :], validate=True)
    except ValueError as exc:
        raise ArchiveKeyError(f"key file {path} is corrupt") from exc
    if len(raw) != KEY_BYTES:
        raise ArchiveKeyError(f"key file {path} is corrupt (wrong length)")
    return raw


class FileKeyProvider:
    """KEK in a 0600 file plus one keyring secret file per data key."""

    def __init__(self, kek_path: Path, keyring_dir: Path, *, create: bool) -> None:
        self._kek_path = kek_path
        self._keyring = keyring_dir
        if not kek_path.exists():
            if not create:
                raise ArchiveKeyError(
                    f"key-encryption key {kek_path} is missing, but the archive already holds "
                    "encrypted data; restore the key file from its safe copy (a new key cannot "
                    "decrypt the existing archive)"
                )
            _write_private_file(
                kek_path,
                (_KEK_HEADER + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()).encode(
                    "ascii"
                ),
            )
            log.info("created a new key-encryption key at %s", kek_path)
        _check_private_file(kek_path)
        self._kek = _read_tagged(kek_path, _KEK_HEADER)
        self._keyring.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._kwk_cache: dict[str, AESGCM] = {}

    def _secret_path(self, key_ref: str) -> Path:
        if not key_ref or not all(c in "0123456789abcdef" for c in key_ref):
            raise ArchiveKeyError(f"malformed key reference {key_ref!r}")
        return self._keyring / key_ref

    def new_key_ref(self) -> str:
        ref = secrets.token_hex(16)
        _write_private_file(self._secret_path(ref), secrets.token_bytes(KEY_BYTES))
        return ref

    def _kwk(self, key_ref: str) -> AESGCM:
        cached = self._kwk_cache.get(key_ref)
        if cached is not None:
            return cached
        path = self._secret_path(key_ref)
        try:
            secret = path.read_bytes()
        except FileNotFoundError:
            raise ArchiveKeyError(
                f"keyring secret {key_ref} is missing from {self._keyring} "
                "(destroyed, or the keyring was not restored)"
            ) from None
        if len(secret) != KEY_BYTES:
            raise ArchiveKeyError(f"keyring secret {key_ref} is corrupt")
        kwk = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=secret,
            info=b"rijkschat/archive/kwk/v1\x00" + key_ref.encode("ascii"),
        ).derive(self._kek)
        aead = AESGCM(kwk)
        self._kwk_cache[key_ref] = aead
        return aead

    def wrap(self, key_ref: str, dek: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._kwk(key_ref).encrypt(nonce, dek, aad)

    def unwrap(self, key_ref: str, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return self._kwk(key_ref).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except InvalidTag:
            raise ArchiveKeyError(
                f"the key-encryption key {self._kek_path} does not match this archive "
                "(wrong key file?)"
            ) from None

    def destroy(self, key_ref: str) -> None:
        path = self._secret_path(key_ref)
        self._kwk_cache.pop(key_ref, None)
        try:
            with path.open("r+b") as fh:
                fh.write(b"\x00" * KEY_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self._keyring)


def make_aad(kind: str, room_id: str, uid: str) -> bytes:
    """Associated data binding a ciphertext to its record kind, room and id."""
    return b"\x00".join((_AAD_PREFIX + kind.encode(), room_id.encode(), uid.encode()))


def new_dek() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def unseal(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """Decrypt; raises :class:`cryptography.exceptions.InvalidTag` on any mismatch."""
    return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


class Signer:
    """The Ed25519 checkpoint signing key, kept in a 0600 file outside the database."""

    def __init__(self, path: Path, *, create: bool) -> None:
        if not path.exists():
            if not create:
                raise ArchiveKeyError(
                    f"checkpoint signing key {path} is missing, but the archive already holds "
                    "signed checkpoints; restore the key file"
                )
            raw = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            _write_private_file(
                path, (_SIGNING_HEADER + base64.b64encode(raw).decode()).encode("ascii")
            )
            log.info("created a new checkpoint signing key at %s", path)
        _check_private_file(path)
        self._key = Ed25519PrivateKey.from_private_bytes(_read_tagged(path, _SIGNING_HEADER))
        self.public_key = self._key.public_key()

    def sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload)

    @property
    def public_raw(self) -> bytes:
        return public_raw(self.public_key)


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a verification key: an exported PEM public key, or the signing key file itself."""
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if text.startswith(_SIGNING_HEADER):
        private = Ed25519PrivateKey.from_private_bytes(_read_tagged(path, _SIGNING_HEADER))
        return private.public_key()
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except ValueError as exc:
        raise ArchiveKeyError(f"{path} is neither a PEM public key nor a signing key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ArchiveKeyError(f"{path} is not an Ed25519 public key")
    return key


def signature_valid(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True
