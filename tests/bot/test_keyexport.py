"""The key export reader (pure): Element's format as nio writes it, the spec's format as
this reader writes it, plain JSON lists, and every kind of bad file with one clear line."""

from __future__ import annotations

import base64
import json

import pytest
from nio.crypto.key_export import FOOTER, HEADER
from nio.crypto.key_export import decrypt as nio_decrypt
from nio.crypto.key_export import encrypt as nio_encrypt

from archiver_bot.bot.keyexport import (
    MAX_ROUNDS,
    KeyFileError,
    encrypt_export,
    parse_sessions,
    read_key_file,
)

SESSIONS = [
    {"algorithm": "m.megolm.v1.aes-sha2", "room_id": "!r:x", "sender_key": "curve",
     "session_id": "sid", "session_key": "key", "sender_claimed_keys": {"ed25519": "ed"},
     "forwarding_curve25519_key_chain": []},
    {"algorithm": "m.olm.v1.curve25519-aes-sha2", "room_id": "!r:x", "sender_key": "c",
     "session_id": "s2", "session_key": "k2"},
    {"room_id": "!r:x"},
    "geen object",
]


def nio_file(payload: bytes, passphrase: str, rounds: int = 1000) -> bytes:
    return f"{HEADER}\n{nio_encrypt(payload, passphrase, count=rounds)}\n{FOOTER}".encode()


def test_reads_what_nio_writes_and_nio_reads_what_it_writes() -> None:
    payload = json.dumps(SESSIONS).encode()
    items, encrypted = read_key_file(nio_file(payload, "wachtwoord"), "wachtwoord")
    assert encrypted
    assert items == SESSIONS
    ours = encrypt_export(payload, "wachtwoord", rounds=1000)
    inner = "".join(ours.strip().removeprefix(HEADER).removesuffix(FOOTER).split())
    assert nio_decrypt(inner, "wachtwoord") == payload


def test_plain_json_list_and_session_checks() -> None:
    items, encrypted = read_key_file(json.dumps(SESSIONS).encode(), None)
    assert not encrypted
    sessions, ignored = parse_sessions(items)
    assert [s.session_id for s in sessions] == ["sid"]
    assert sessions[0].sender_ed25519 == "ed"
    assert ignored == {
        "unsupported algorithm m.olm.v1.curve25519-aes-sha2": 1,
        "incomplete session entry": 1,
        "not a session object": 1,
    }


def _flip(data: bytes, index: int) -> bytes:
    lines = data.decode().strip().splitlines()
    raw = bytearray(base64.b64decode("".join(lines[1:-1]) + "=="))
    raw[index] ^= 1
    return f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n{lines[-1]}".encode()


def _rounds(data: bytes, rounds: int) -> bytes:
    lines = data.decode().strip().splitlines()
    raw = bytearray(base64.b64decode("".join(lines[1:-1]) + "=="))
    raw[33:37] = rounds.to_bytes(4, "big")
    return f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n{lines[-1]}".encode()


GOOD = nio_file(json.dumps(SESSIONS).encode(), "goed")


@pytest.mark.parametrize(("data", "passphrase", "message"), [
    (GOOD, "fout", "wrong passphrase"),
    (GOOD, None, "give its passphrase"),
    (GOOD[: len(GOOD) // 2], "goed", "truncated"),
    (GOOD[:80] + b"\n" + FOOTER.encode(), "goed", "truncated (too short)"),
    (_flip(GOOD, 50), "goed", "altered"),
    (_flip(GOOD, len(base64.b64decode(GOOD.split(b"\n")[1] + b"==")) - 1), "goed", "altered"),
    (_flip(GOOD, 0), "goed", "unsupported key export version"),
    (_rounds(GOOD, MAX_ROUNDS + 1), "goed", "PBKDF2 rounds"),
    (_rounds(GOOD, 0), "goed", "PBKDF2 rounds"),
    (f"{HEADER}\n!!!niet base64!!!\n{FOOTER}".encode(), "goed", "not valid base64"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", None, "not text"),
    (b"hallo", None, "not a room-key export"),
    (b"[1, 2", None, "not valid JSON"),
    (nio_file(b'{"a": 1}', "goed"), "goed", "does not hold a list"),
    (nio_file(b"\xff\xfe", "goed"), "goed", "decrypted key file is not valid JSON"),
])
def test_bad_files_give_one_clear_line(data: bytes, passphrase: str | None, message: str) -> None:
    with pytest.raises(KeyFileError, match="^.+$") as caught:
        read_key_file(data, passphrase)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
