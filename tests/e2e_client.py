"""A real end-to-end-encrypting Matrix client for tests (matrix-nio, vodozemac)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginResponse,
    RoomCreateError,
    RoomSendResponse,
    UploadResponse,
)

from tests.helpers import RunningHomeserver


class E2EUser:
    def __init__(self, hs: RunningHomeserver, localpart: str, store_dir: Path) -> None:
        self.hs = hs
        self.localpart = localpart
        self.user_id = hs.user_id(localpart)
        store_dir.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(
            hs.url, self.user_id, store_path=str(store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True,
                                     pickle_key="test-pickle-key"),
        )

    async def start(self) -> E2EUser:
        resp = await self.client.login(self.hs.password(self.localpart), device_name="test")
        assert isinstance(resp, LoginResponse), resp
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self.sync()
        return self

    async def sync(self, timeout: int = 0) -> None:
        await self.client.sync(timeout=timeout, full_state=self.client.next_batch is None)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        await self.client.send_to_device_messages()

    async def create_room(self, name: str, invite: list[str] = ()) -> str:  # type: ignore[assignment]
        resp = await self.client.room_create(
            name=name, invite=list(invite),
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        )
        assert not isinstance(resp, RoomCreateError), resp
        await self.sync()
        return str(resp.room_id)

    async def join(self, room_id: str) -> None:
        resp = await self.client.join(room_id)
        assert not isinstance(resp, JoinError), resp
        await self.sync()

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.client.room_invite(room_id, user_id)
        await self.sync()

    async def send(self, room_id: str, content: dict[str, Any],
                   event_type: str = "m.room.message", **kwargs: Any) -> str:
        await self.sync()
        resp = await self.client.room_send(room_id, event_type, content,
                                           ignore_unverified_devices=True, **kwargs)
        assert isinstance(resp, RoomSendResponse), resp
        return str(resp.event_id)

    async def send_text(self, room_id: str, body: str) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": body})

    async def send_file(self, room_id: str, data: bytes, name: str, mimetype: str,
                        msgtype: str = "m.file") -> str:
        resp, keys = await self.client.upload(io.BytesIO(data), content_type=mimetype,
                                              filename=name, encrypt=True, filesize=len(data))
        assert isinstance(resp, UploadResponse), resp
        assert keys is not None
        file = {**keys, "url": resp.content_uri}
        content = {"msgtype": msgtype, "body": name, "filename": name, "file": file,
                   "info": {"mimetype": mimetype, "size": len(data)}}
        return await self.send(room_id, content)

    async def close(self) -> None:
        await self.client.close()


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.25) -> Any:
    """Await an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)
