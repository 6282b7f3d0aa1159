"""Room-key export files (pure, no I/O): Element's encrypted format and plain JSON lists.

The encrypted format is the Matrix spec's "Key exports" (client-server API, end-to-end
encryption): ``-----BEGIN MEGOLM SESSION DATA-----``, base64 of ``0x01 ‖ salt (16) ‖ IV (16)
‖ rounds (4, big endian) ‖ AES-256-CTR ciphertext ‖ HMAC-SHA-256 (32)``, keys from
PBKDF2-HMAC-SHA-512 of the passphrase (first 32 bytes AES, last 32 bytes HMAC). The payload
is a JSON list of exported sessions (``algorithm``, ``room_id``, ``sender_key``,
``session_id``, ``session_key``, ``sender_claimed_keys``, ``forwarding_curve25519_key_chain``).

The primitives are the ``cryptography`` package's (OpenSSL): nio's own reader
(``nio.crypto.key_export``) runs PBKDF2 with a Python-level PRF (seconds for Element's
500,000 rounds), compares the MAC with ``!=``, takes any round count a file names, and
fails on short input with an ``IndexError``; this reader checks the MAC in constant time
before decrypting, bounds the round count and says in one line what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from archiver_bot.errors import ArchiverError

HEADER = "-----BEGIN MEGOLM SESSION DATA-----"
FOOTER = "-----END MEGOLM SESSION DATA-----"
MEGOLM = "m.megolm.v1.aes-sha2"
#: the largest export file read (a heavy user's export of years of rooms stays far below)
MAX_EXPORT_BYTES = 32 * 1024 * 1024
#: PBKDF2 rounds accepted from a file: Element writes 500,000; more is a denial of service
MAX_ROUNDS = 5_000_000
DEFAULT_ROUNDS = 500_000
_HEAD = 1 + 16 + 16 + 4
_MAC = 32


class KeyFileError(ArchiverError):
    """The key file cannot be read: wrong passphrase, damaged, forged or not an export."""


@dataclass(frozen=True)
class ExportedSession:
    room_id: str
    session_id: str
    sender_key: str
    session_key: str
    algorithm: str
    sender_ed25519: str
    forwarding_chain: tuple[str, ...]


def _derive(passphrase: str, salt: bytes, rounds: int) -> tuple[bytes, bytes]:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA512(), length=64, salt=salt, iterations=rounds)
    key = kdf.derive(passphrase.encode("utf-8"))
    return key[:32], key[32:]


def decrypt_export(text: str, passphrase: str) -> bytes:
    """The JSON payload of an encrypted export; :class:`KeyFileError` on any problem."""
    body = text.strip()
    if not body.startswith(HEADER):
        raise KeyFileError("not a room-key export (no BEGIN MEGOLM SESSION DATA line)")
    if not body.endswith(FOOTER):
        raise KeyFileError("the key file is truncated (no END MEGOLM SESSION DATA line)")
    inner = "".join(body[len(HEADER) : -len(FOOTER)].split())
    try:
        raw = base64.b64decode(inner + "=" * (-len(inner) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError("the key file is damaged (not valid base64)") from None
    if len(raw) < _HEAD + _MAC:
        raise KeyFileError("the key file is truncated (too short)")
    if raw[0] != 1:
        raise KeyFileError(f"unsupported key export version {raw[0]}")
    salt, iv = raw[1:17], raw[17:33]
    rounds = int.from_bytes(raw[33:37], "big")
    if not 1 <= rounds <= MAX_ROUNDS:
        raise KeyFileError(f"the key file asks for {rounds} PBKDF2 rounds (at most {MAX_ROUNDS})")
    aes_key, mac_key = _derive(passphrase, salt, rounds)
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(raw[:-_MAC])
    try:
        mac.verify(raw[-_MAC:])
    except InvalidSignature:
        raise KeyFileError(
            "wrong passphrase, or the key file was altered (its HMAC does not match)"
        ) from None
    decryptor = Cipher(algorithms.AES(aes_key), modes.CTR(iv)).decryptor()
    return decryptor.update(raw[_HEAD:-_MAC]) + decryptor.finalize()


def encrypt_export(payload: bytes, passphrase: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """An export file's text for ``payload`` (what Element writes)."""
    salt = os.urandom(16)
    iv = bytearray(os.urandom(16))
    iv[8] &= 0x7F  # bit 63 cleared, as the spec asks (room for the counter)
    aes_key, mac_key = _derive(passphrase, salt, rounds)
    encryptor = Cipher(algorithms.AES(aes_key), modes.CTR(bytes(iv))).encryptor()
    body = (
        b"\x01" + salt + bytes(iv) + rounds.to_bytes(4, "big")
        + encryptor.update(payload) + encryptor.finalize()
    )
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(body)
    encoded = base64.b64encode(body + mac.finalize()).decode("ascii")
    lines = [encoded[i : i + 96] for i in range(0, len(encoded), 96)]
    return "\n".join([HEADER, *lines, FOOTER]) + "\n"


def read_key_file(data: bytes, passphrase: str | None) -> tuple[list[Any], bool]:
    """The list of exported sessions in ``data`` and whether the file was encrypted."""
    if len(data) > MAX_EXPORT_BYTES:
        raise KeyFileError(f"the key file is larger than {MAX_EXPORT_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError("not a room-key export (not text)") from None
    stripped = text.lstrip("\ufeff \t\r\n")
    encrypted = stripped.startswith(HEADER)
    if encrypted:
        if not passphrase:
            raise KeyFileError("the key file is encrypted: give its passphrase")
        payload = decrypt_export(stripped, passphrase)
    elif stripped.startswith("["):
        payload = stripped.encode("utf-8")
    else:
        raise KeyFileError(
            "not a room-key export (neither MEGOLM SESSION DATA nor a JSON list of sessions)"
        )
    try:
        sessions = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        what = "the decrypted key file" if encrypted else "the key file"
        raise KeyFileError(f"{what} is not valid JSON (damaged or truncated)") from None
    if not isinstance(sessions, list):
        raise KeyFileError("the key file does not hold a list of sessions")
    return sessions, encrypted


def parse_sessions(items: list[Any]) -> tuple[list[ExportedSession], dict[str, int]]:
    """Well-formed sessions, and the count of the rest per reason."""
    out: list[ExportedSession] = []
    ignored: dict[str, int] = {}

    def skip(reason: str) -> None:
        ignored[reason] = ignored.get(reason, 0) + 1

    for item in items:
        if not isinstance(item, dict):
            skip("not a session object")
            continue
        fields = ("room_id", "session_id", "sender_key", "session_key", "algorithm")
        values = [item.get(f) for f in fields]
        if not all(isinstance(v, str) and v and len(v) < 4096 for v in values):
            skip("incomplete session entry")
            continue
        room_id, session_id, sender_key, session_key, algorithm = (str(v) for v in values)
        if algorithm != MEGOLM:
            skip(f"unsupported algorithm {algorithm[:40]}")
            continue
        claimed = item.get("sender_claimed_keys")
        ed25519 = claimed.get("ed25519") if isinstance(claimed, dict) else None
        chain = item.get("forwarding_curve25519_key_chain") or []
        if not isinstance(chain, list) or not all(isinstance(c, str) for c in chain):
            chain = []
        out.append(
            ExportedSession(
                room_id=room_id,
                session_id=session_id,
                sender_key=sender_key,
                session_key=session_key,
                algorithm=algorithm,
                sender_ed25519=ed25519 if isinstance(ed25519, str) else "",
                forwarding_chain=tuple(chain),
            )
        )
    return out, ignored
