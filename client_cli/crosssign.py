"""Cross-signing of the client's own device, as Element does on first login (nio has none).

Element encrypts only to devices their owner has cross-signed (MSC4153). On the first login
the client creates a master, a self-signing and a user-signing key (kept 0600 in its data
dir), uploads them (user-interactive auth with the password just typed), and signs its device
with the self-signing key. The approach follows ``archiver_bot/bot/crosssign.py`` (copied, not
imported: the client talks to servers over HTTP only).

If the account already has cross-signing keys that this machine does not hold (set up by
Element, say), they are left alone: the device then stays unsigned until it is verified from
a device that holds them.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from nio import AsyncClient

from client_cli.errors import CliError
from client_cli.matrix import raw_request
from client_cli.storage import write_private

log = logging.getLogger(__name__)


class CrossSigningError(CliError):
    """The homeserver refused our cross-signing keys or signatures."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_json(obj: dict[str, Any], key: Ed25519PrivateKey) -> str:
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return b64(key.sign(canonical_json(unsigned)))


@dataclass
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> str:
        return b64(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.public}"

    def seed(self) -> str:
        return b64(self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def from_seed(cls, seed: str) -> SigningKey:
        raw = base64.b64decode(seed + "=" * (-len(seed) % 4))
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())


@dataclass
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def load_or_create(cls, path: Path) -> CrossSigningKeys:
        if path.exists():
            data = json.loads(path.read_text("utf-8"))
            return cls(*(SigningKey.from_seed(data[k]) for k in ("master", "self_signing",
                                                                  "user_signing")))
        keys = cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
        doc = {"master": keys.master.seed(), "self_signing": keys.self_signing.seed(),
               "user_signing": keys.user_signing.seed()}
        write_private(path, json.dumps(doc))
        return keys

    def upload_body(self, user_id: str) -> dict[str, Any]:
        master = {"user_id": user_id, "usage": ["master"],
                  "keys": {self.master.key_id: self.master.public}}
        body: dict[str, Any] = {"master_key": master}
        for name, key, usage in (("self_signing_key", self.self_signing, "self_signing"),
                                 ("user_signing_key", self.user_signing, "user_signing")):
            obj: dict[str, Any] = {"user_id": user_id, "usage": [usage],
                                   "keys": {key.key_id: key.public}}
            obj["signatures"] = {user_id: {self.master.key_id: sign_json(obj, self.master.private)}}
            body[name] = obj
        return body


async def _api(client: AsyncClient, method: str, path: str, body: Any) -> tuple[int, Any]:
    status, data = await raw_request(client, method, path, body)
    return status, data if data is not None else {}


async def ensure_cross_signed(client: AsyncClient, key_file: Path, password: str) -> str | None:
    """Make sure our keys are on the server and our device is signed.

    Returns the master key, or None when the account's cross-signing keys were made elsewhere
    (then this device is left for the user to verify from a device that holds them)."""
    user_id, device_id = client.user_id, client.device_id
    status, query = await _api(client, "POST", "/keys/query", {"device_keys": {user_id: []}})
    if status != 200:
        raise CrossSigningError(f"keys/query failed: {status}")
    server_master = query.get("master_keys", {}).get(user_id, {}).get("keys", {})
    if server_master and not key_file.exists():  # noqa: ASYNC240 (tiny local file)
        log.info("the account has cross-signing keys from another device; not replacing them")
        return None
    keys = CrossSigningKeys.load_or_create(key_file)
    if server_master and keys.master.key_id not in server_master:
        log.info("the account's cross-signing keys changed elsewhere; not replacing them")
        return None
    if keys.master.key_id not in server_master:
        body = keys.upload_body(user_id)
        status, resp = await _api(client, "POST", "/keys/device_signing/upload", body)
        if status == 401 and "session" in resp:  # user-interactive auth with our password
            body["auth"] = {"type": "m.login.password", "session": resp["session"],
                            "identifier": {"type": "m.id.user", "user": user_id},
                            "password": password}
            status, resp = await _api(client, "POST", "/keys/device_signing/upload", body)
        if status != 200:
            raise CrossSigningError(f"uploading cross-signing keys failed: {status} "
                                    f"{resp.get('errcode') if isinstance(resp, dict) else ''}")
        log.info("uploaded cross-signing keys")
    device = query.get("device_keys", {}).get(user_id, {}).get(device_id)
    if device is None:
        raise CrossSigningError(f"device {device_id} has no keys on the server yet")
    signed_by = device.get("signatures", {}).get(user_id, {})
    if keys.self_signing.key_id not in signed_by:
        device = {k: v for k, v in device.items() if k != "unsigned"}
        signature = sign_json(device, keys.self_signing.private)
        device.setdefault("signatures", {}).setdefault(user_id, {})[
            keys.self_signing.key_id
        ] = signature
        status, resp = await _api(client, "POST", "/keys/signatures/upload",
                                  {user_id: {device_id: device}})
        if status != 200 or resp.get("failures"):
            raise CrossSigningError(f"signing device {device_id} failed: {status}")
        log.info("cross-signed device %s", device_id)
    return keys.master.public


def device_cross_signed(query: dict[str, Any], user_id: str, device_id: str) -> bool:
    """Whether a /keys/query answer shows the device signed by its owner's self-signing key,
    which is signed by the owner's master key (signatures checked, not just present)."""
    try:
        master = query["master_keys"][user_id]
        self_signing = query["self_signing_keys"][user_id]
        device = query["device_keys"][user_id][device_id]
        (master_id, master_pub), = master["keys"].items()
        (ssk_id, ssk_pub), = self_signing["keys"].items()
        if not _verify(self_signing, user_id, master_id, master_pub):
            return False
        return _verify(device, user_id, ssk_id, ssk_pub)
    except (KeyError, ValueError, TypeError, AttributeError):
        return False


def _verify(obj: dict[str, Any], user_id: str, key_id: str, public: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signature = obj.get("signatures", {}).get(user_id, {}).get(key_id)
    if not isinstance(signature, str):
        return False
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64(public))
        key.verify(_unb64(signature), canonical_json(unsigned))
    except (InvalidSignature, ValueError):
        return False
    return True


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
