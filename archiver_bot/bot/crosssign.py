"""Cross-signing for the archiver's own device (matrix-nio has none).

Element encrypts only to devices their owner has cross-signed (MSC4153). The archiver
creates a master, a self-signing and a user-signing key once (kept 0600 in its data dir),
uploads them, and signs its device with the self-signing key.
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

from archiver_bot.errors import ArchiverError
from archiver_bot.settings import write_private

log = logging.getLogger(__name__)


class CrossSigningError(ArchiverError):
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
    url = f"{client.homeserver}/_matrix/client/v3{path}"
    assert client.client_session is not None
    async with client.client_session.request(
        method, url, json=body, headers={"Authorization": f"Bearer {client.access_token}"}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def ensure_cross_signed(client: AsyncClient, key_file: Path, password: str) -> str:
    """Make sure our keys are on the server and our device is signed. Returns the master key."""
    if client.client_session is None:
        await client.create_session()
    user_id, device_id = client.user_id, client.device_id
    keys = CrossSigningKeys.load_or_create(key_file)
    status, query = await _api(client, "POST", "/keys/query", {"device_keys": {user_id: []}})
    if status != 200:
        raise CrossSigningError(f"keys/query failed: {status}")
    server_master = query.get("master_keys", {}).get(user_id, {}).get("keys", {})
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
        log.info("uploaded cross-signing keys (master %s)", keys.master.public)
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
            raise CrossSigningError(f"signing device {device_id} failed: {status} {resp}")
        log.info("cross-signed device %s", device_id)
    return keys.master.public
