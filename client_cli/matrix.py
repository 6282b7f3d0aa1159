"""matrix-nio session helpers: one logged-in, end-to-end encrypting client per command.

Every command runs against a :class:`Connection`: the stored session restored on its own
device (E2E store in the data dir, random pickle key), synced once with the full room state
so that rooms, members, encryption and the archiving marker are known.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    Event,
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RedactedEvent,
    RoomGetEventResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
    UnknownEvent,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import EncryptionError, LocalProtocolError, SendRetryError

from client_cli.errors import (
    MatrixRequestError,
    NotLoggedInError,
    UnknownEventError,
    UnknownRoomError,
    UnreachableError,
    UsageError,
)
from client_cli.storage import Session, Storage, ensure_private_dir, tighten
from client_cli.timeline import TimelineEvent

log = logging.getLogger(__name__)

ARCHIVING_STATE = "nl.rijkschat.archiving"
ARCHIVER_LOCALPART = "rijksarchief"
DEVICE_NAME = "rijkschat CLI"
# Enforce mode refuses messages in a key official's room until the archiver has joined
# (typically within tens of milliseconds of the room's creation): wait this long at most.
ARCHIVER_JOIN_WAIT = 15.0
NOT_YET_ARCHIVED_HINT = "archivering nog niet actief"
# The homeserver brings the archiver into a key official's room right after the membership
# change that makes it one (invite, then join, within milliseconds): a message encrypted in
# that moment would leave the archiver without its key. So after a membership change this
# recent, wait for the archiver before encrypting (rooms without a key official: once, briefly).
ARCHIVER_SETTLE_SECONDS = 2.0
ARCHIVER_POLL_SECONDS = 0.2


def client_config(pickle_key: str) -> AsyncClientConfig:
    return AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=True,
        pickle_key=pickle_key,
        max_timeouts=2,
        max_limit_exceeded=3,
        request_timeout=30,
        backoff_factor=0.2,
    )


def make_client(storage: Storage, homeserver: str, user_id: str) -> AsyncClient:
    ensure_private_dir(storage.root)
    ensure_private_dir(storage.store_dir)
    return AsyncClient(
        homeserver.rstrip("/"),
        user_id,
        store_path=str(storage.store_dir),
        config=client_config(storage.pickle_key()),
    )


def uncached_filter() -> dict[str, Any]:
    """A sync filter that changes nothing but is new each time.

    Synapse answers an identical /sync request (same since, filter, timeout, ...) from a
    response cache for two minutes; a separate process that syncs from the same token (e.g.
    when nothing happened in between) would then see an answer from before its own last
    action. A filter excluding a made-up event type makes every request distinct."""
    nonce = f"nl.rijkschat.cli.nocache.{uuid.uuid4().hex}"
    return {"room": {"timeline": {"not_types": [nonce]}}}


def ensure_http(client: AsyncClient) -> aiohttp.ClientSession:
    """nio's HTTP session, created (as nio would) if no request has been made yet."""
    if client.client_session is None:
        client.client_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=client.config.request_timeout))
    session: aiohttp.ClientSession = client.client_session
    return session


async def raw_request(client: AsyncClient, method: str, path: str,
                      body: Any = None, params: dict[str, str] | None = None) -> tuple[int, Any]:
    """A client-server API call nio has no method for: (HTTP status, parsed JSON or None)."""
    url = f"{client.homeserver}/_matrix/client/v3{path}"
    async with ensure_http(client).request(
        method, url, json=body, params=params,
        headers={"Authorization": f"Bearer {client.access_token}"},
    ) as resp:
        try:
            return resp.status, await resp.json(content_type=None)
        except ValueError:
            return resp.status, None


@contextlib.contextmanager
def reachable(what: str, url: str) -> Iterator[None]:
    """Turn transport failures into one clear error naming the server."""
    try:
        yield
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise UnreachableError(f"{what} at {url} does not answer ({type(exc).__name__})") from exc
    except aiohttp.InvalidURL as exc:
        raise UnreachableError(f"{what} URL {url} is not valid") from exc


def check(resp: Any, what: str) -> Any:
    """Return a successful nio response; raise a typed error for an error response."""
    if isinstance(resp, ErrorResponse):
        code = resp.status_code or ""
        if code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise NotLoggedInError(
                "the homeserver no longer accepts this session: run `rijkschat login`"
            )
        raise MatrixRequestError(f"{what} failed: {resp.message or code} ({code})".rstrip())
    return resp


def user_id_of(arg: str, server_name: str) -> str:
    """``@user:server``, ``@user`` or ``user`` to a full user id."""
    local = arg[1:] if arg.startswith("@") else arg
    if not local:
        raise UsageError(f"not a user: {arg!r}")
    return f"@{local}" if ":" in local else f"@{local}:{server_name}"


@dataclass
class RoomInfo:
    room_id: str
    name: str
    membership: str  # "join" or "invite"
    encrypted: bool
    archived: bool | None  # None: not known before joining (an invitation)
    members: int
    alias: str | None = None
    archiving: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "name": self.name,
            "alias": self.alias,
            "membership": self.membership,
            "encrypted": self.encrypted,
            "archived": self.archived,
            "archiving": self.archiving,
            "members": self.members,
        }


def normalize(event: Any) -> TimelineEvent | None:
    """A nio timeline event (decrypted where possible) as a plain :class:`TimelineEvent`."""
    if not isinstance(event, Event):
        return None
    source: dict[str, Any] = dict(event.source or {})
    event_id, sender = str(event.event_id), str(event.sender)
    ts = int(event.server_timestamp or 0)
    if isinstance(event, RedactedEvent):
        return TimelineEvent(event_id, sender, ts, type=str(event.type), content={},
                             redacted_by=str(event.redacter or "") or "?",
                             redaction_reason=event.reason)
    if isinstance(event, MegolmEvent):  # still encrypted: we hold no key for it
        content = source.get("content") or {}
        relates = content.get("m.relates_to") if isinstance(content, dict) else None
        return TimelineEvent(event_id, sender, ts, type="m.room.encrypted",
                             content={"m.relates_to": relates} if relates else {},
                             encrypted=True, undecryptable=True)
    content = source.get("content")
    return TimelineEvent(
        event_id, sender, ts,
        type=str(source.get("type", "")),
        content=dict(content) if isinstance(content, dict) else {},
        encrypted=bool(getattr(event, "decrypted", False)),
        state_key=source.get("state_key") if isinstance(source.get("state_key"), str) else None,
    )


def _name_matches(names: set[str], arg: str, exact: bool) -> bool:
    if exact:
        return arg in names
    return arg.casefold() in {n.casefold() for n in names}


@dataclass
class Connection:
    storage: Storage
    session: Session
    client: AsyncClient
    archiving: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def user_id(self) -> str:
        return self.session.user_id

    # -- syncing ------------------------------------------------------------------------------

    async def sync(self, timeout_ms: int = 0, full_state: bool = True) -> SyncResponse:
        resp = check(await self.client.sync(timeout=timeout_ms, full_state=full_state,
                                            sync_filter=uncached_filter()), "sync")
        self._note_archiving(resp)
        await self.after_sync()
        assert isinstance(resp, SyncResponse)
        return resp

    async def after_sync(self) -> None:
        """Upload our keys, learn others' devices and send queued to-device messages."""
        if self.client.should_upload_keys:
            check(await self.client.keys_upload(), "uploading device keys")
        if self.client.should_query_keys:
            check(await self.client.keys_query(), "querying device keys")
        await self.client.send_to_device_messages()

    def _note_archiving(self, resp: SyncResponse) -> None:
        for room_id, info in resp.rooms.join.items():
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, UnknownEvent) and event.type == ARCHIVING_STATE:
                    content = event.source.get("content")
                    if isinstance(content, dict) and content:
                        self.archiving[room_id] = content
                    else:
                        self.archiving.pop(room_id, None)

    # -- rooms --------------------------------------------------------------------------------

    @property
    def archiver_id(self) -> str:
        return f"@{ARCHIVER_LOCALPART}:{self.session.server_name}"

    def is_archived(self, room_id: str) -> bool:
        state = self.archiving.get(room_id)
        if state is not None:
            return bool(state.get("archived", True))
        room = self.client.rooms.get(room_id)
        return room is not None and self.archiver_id in room.users

    def room_info(self, room: MatrixRoom, membership: str) -> RoomInfo:
        return RoomInfo(
            room_id=room.room_id,
            name=room.display_name,
            membership=membership,
            encrypted=bool(room.encrypted),
            archived=self.is_archived(room.room_id) if membership == "join" else None,
            members=int(room.member_count or len(room.users)),
            alias=room.canonical_alias,
            archiving=self.archiving.get(room.room_id),
        )

    async def invites(self) -> dict[str, RoomInfo]:
        """Pending invitations. An incremental sync names an invitation only once, so ask
        the homeserver for all of them: a sync without ``since`` whose filter leaves out
        everything else (it has no side effects: to-device messages are only acknowledged
        by a later ``since``; we ignore them here)."""
        nothing: dict[str, Any] = {"types": []}
        sync_filter = uncached_filter()
        sync_filter.update({"presence": nothing, "account_data": nothing})
        sync_filter["room"].update({"state": nothing, "ephemeral": nothing,
                                    "account_data": nothing})
        sync_filter["room"]["timeline"]["limit"] = 0
        status, body = await raw_request(self.client, "GET", "/sync",
                                         params={"filter": json.dumps(sync_filter),
                                                 "timeout": "0"})
        if status != 200 or not isinstance(body, dict):
            check(await self.client.whoami(), "listing invitations")
            raise MatrixRequestError(f"listing invitations failed: HTTP {status}")
        found: dict[str, RoomInfo] = {}
        for room_id, room in (body.get("rooms", {}).get("invite") or {}).items():
            events = (room.get("invite_state") or {}).get("events") or []
            state = {(e.get("type"), e.get("state_key")): e.get("content") or {}
                     for e in events if isinstance(e, dict)}
            name = state.get(("m.room.name", ""), {}).get("name")
            alias = state.get(("m.room.canonical_alias", ""), {}).get("alias")
            inviter = next((e.get("sender") for e in events if isinstance(e, dict)
                            and e.get("type") == "m.room.member"
                            and e.get("state_key") == self.user_id), None)
            members = sum(1 for (etype, _key), content in state.items()
                          if etype == "m.room.member"
                          and content.get("membership") in ("join", "invite"))
            found[room_id] = RoomInfo(
                room_id=room_id,
                name=str(name or alias or f"uitnodiging van {inviter or '?'}"),
                membership="invite",
                encrypted=("m.room.encryption", "") in state,
                archived=None,
                members=members,
                alias=alias if isinstance(alias, str) else None,
            )
        return found

    async def rooms(self) -> list[RoomInfo]:
        joined = [self.room_info(r, "join") for r in self.client.rooms.values()]
        invited = await self.invites()
        for room in self.client.invited_rooms.values():
            invited.setdefault(room.room_id, self.room_info(room, "invite"))
        invited = {k: v for k, v in invited.items() if k not in self.client.rooms}
        return sorted([*joined, *invited.values()],
                      key=lambda r: (r.membership != "join", r.name.lower()))

    def room(self, room_id: str) -> MatrixRoom:
        room = self.client.rooms.get(room_id)
        if room is None:
            raise UnknownRoomError(f"you are not in room {room_id}")
        return room

    async def resolve_room(self, arg: str, *, invited: bool = False) -> str:
        """A room id, an alias or an unambiguous room name to the id of a room we are in
        (or, with ``invited``, are invited to)."""
        known = {rid: {str(r.display_name), str(r.name or "")}
                 for rid, r in self.client.rooms.items()}
        if invited:
            for rid, info in (await self.invites()).items():
                known.setdefault(rid, {info.name})
        if arg.startswith("!"):
            if arg in known:
                return arg
            if not invited and arg in self.client.invited_rooms:
                raise UnknownRoomError(f"you are invited to {arg}: `rijkschat join` it first")
            raise UnknownRoomError(f"unknown room {arg}: you are not in it")
        if arg.startswith("#"):
            alias = arg if ":" in arg else f"{arg}:{self.session.server_name}"
            resp = await self.client.room_resolve_alias(alias)
            if isinstance(resp, ErrorResponse):
                raise UnknownRoomError(f"unknown room alias {alias}")
            room_id = str(resp.room_id)
            if room_id not in known:
                raise UnknownRoomError(f"you are not in room {alias} ({room_id})")
            return room_id
        for exact in (True, False):
            matches = [rid for rid, names in known.items() if _name_matches(names, arg, exact)]
            if len(matches) == 1:
                return str(matches[0])
            if len(matches) > 1:
                raise UnknownRoomError(
                    f"room name {arg!r} is ambiguous ({len(matches)} rooms: "
                    f"{', '.join(sorted(matches))}); use the room id"
                )
        raise UnknownRoomError(f"unknown room {arg!r}: no room of yours has that name")

    def display_name(self, room_id: str, user_id: str) -> str:
        room = self.client.rooms.get(room_id)
        if room is not None and user_id in room.users:
            return str(room.user_name(user_id) or user_id)
        return user_id

    # -- sending ------------------------------------------------------------------------------

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send (encrypted in an encrypted room); in a key official's room wait for the
        archiver if the homeserver refuses messages until it has joined."""
        deadline = time.monotonic() + ARCHIVER_JOIN_WAIT
        while True:
            try:
                event_id, errcode, message = await self._send_once(room_id, event_type, content)
            except (SendRetryError, LocalProtocolError, EncryptionError) as exc:
                raise MatrixRequestError(f"sending to {room_id} failed: {exc}") from exc
            if event_id is not None:
                return event_id
            if (
                errcode == "M_FORBIDDEN"
                and NOT_YET_ARCHIVED_HINT in message
                and time.monotonic() < deadline
            ):
                log.info("room %s is not archived yet; waiting for the archiver", room_id)
                await asyncio.sleep(0.5)
                await self.sync(full_state=False)
                # Make sure the next attempt shares the room key with the archiver's device.
                self.client.invalidate_outbound_session(room_id)
                continue
            if errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
                raise NotLoggedInError(
                    "the homeserver no longer accepts this session: run `rijkschat login`")
            raise MatrixRequestError(f"sending failed: {message or errcode} ({errcode})")

    async def _send_once(self, room_id: str, event_type: str,
                         content: dict[str, Any]) -> tuple[str | None, str, str]:
        """One attempt: (event id, "", "") or (None, errcode, error message)."""
        await self.prepare_encryption(room_id)
        room = self.client.rooms.get(room_id)
        if event_type == "m.reaction" and room is not None and room.encrypted:
            return await self._send_encrypted_reaction(room_id, content)
        resp = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        if isinstance(resp, RoomSendResponse):
            return str(resp.event_id), "", ""
        return None, str(getattr(resp, "status_code", "") or ""), str(
            getattr(resp, "message", "") or "")

    async def prepare_encryption(self, room_id: str) -> None:
        """Before encrypting in a room: the archiver joined if it is on its way in, every
        member's devices known (lists queried when unknown or outdated), an Olm session with
        each device (one-time keys claimed), and the room key shared with every device.
        Only then may a message be encrypted: the archive can decrypt it from its first index.
        """
        client = self.client
        room = client.rooms.get(room_id)
        if room is None or not room.encrypted or client.olm is None:
            return
        await self._wait_for_archiver(room_id)
        check(await client.joined_members(room_id), "listing the room's members")
        client.olm.update_tracked_users(room)  # members whose devices we never asked for
        if client.should_query_keys:
            check(await client.keys_query(), "querying device keys")
        users = list(room.users)
        missing = client.olm.get_missing_sessions(users)
        if missing:
            check(await client.keys_claim(missing), "claiming one-time keys")
        session = client.olm.outbound_group_sessions.get(room_id)
        if session is not None and self._devices_without(room_id, users, session):
            client.invalidate_outbound_session(room_id)  # a new device: a new room key for all
        if client.olm.should_share_group_session(room_id):
            check(await client.share_group_session(room_id, ignore_unverified_devices=True),
                  "sharing the room key")
        session = client.olm.outbound_group_sessions.get(room_id)
        if self.archiver_id in room.users and room.users[self.archiver_id].invited is False:
            archiver_devices = list(client.olm.device_store.active_user_devices(self.archiver_id))
            lacking = [] if session is None else self._devices_without(
                room_id, [self.archiver_id], session)
            if not archiver_devices:
                raise MatrixRequestError(
                    "the archive has no device to share the room key with (is the archiver "
                    "running?); nothing was sent: try again shortly")
            if lacking:
                raise MatrixRequestError(
                    "the archive's device could not receive the room key (no one-time key "
                    "left?); nothing was sent: try again shortly")

    def _devices_without(self, room_id: str, users: list[str], session: Any) -> list[str]:
        """Devices of ``users`` (not ours, not blacklisted) that lack the room key."""
        olm = self.client.olm
        assert olm is not None
        lacking = []
        for user_id in users:
            for device in olm.device_store.active_user_devices(user_id):
                key = (user_id, device.id)
                if device.id == self.client.device_id or olm.is_device_blacklisted(device):
                    continue
                if key not in session.users_shared_with and key not in session.users_ignored:
                    lacking.append(f"{user_id}/{device.id}")
        return lacking

    async def _wait_for_archiver(self, room_id: str) -> None:
        """If the archiver is invited, or the room's membership changed a moment ago (the
        homeserver may be bringing the archiver in), wait until it has joined."""
        status, body = await raw_request(self.client, "GET",
                                         f"/rooms/{quote(room_id, safe='')}/state")
        if status != 200 or not isinstance(body, list):
            return
        membership: str | None = None
        latest_ms = 0
        for event in body:
            if not isinstance(event, dict):
                continue
            if event.get("type") in ("m.room.member", "m.room.create"):
                latest_ms = max(latest_ms, int(event.get("origin_server_ts") or 0))
            if event.get("type") == "m.room.member" and event.get("state_key") == self.archiver_id:
                membership = (event.get("content") or {}).get("membership")
        if membership == "join":
            return
        now = time.time()
        if membership == "invite":
            deadline = now + ARCHIVER_JOIN_WAIT
        else:
            deadline = latest_ms / 1000 + ARCHIVER_SETTLE_SECONDS
        while time.time() < deadline:
            status, body = await raw_request(self.client, "GET",
                                             f"/rooms/{quote(room_id, safe='')}/joined_members")
            if status == 200 and isinstance(body, dict) and self.archiver_id in (
                    body.get("joined") or {}):
                log.info("the archiver joined %s; sharing the room key with it", room_id)
                return
            await asyncio.sleep(ARCHIVER_POLL_SECONDS)

    async def _send_encrypted_reaction(self, room_id: str,
                                       content: dict[str, Any]) -> tuple[str | None, str, str]:
        """nio sends reactions in the clear; Element encrypts them, and so do we (the
        relation stays readable, the emoji does not)."""
        client = self.client
        if not client.rooms[room_id].members_synced:
            check(await client.joined_members(room_id), "listing the room's members")
            if client.should_query_keys:
                check(await client.keys_query(), "querying device keys")
        if client.olm.should_share_group_session(room_id):
            await client.share_group_session(room_id, ignore_unverified_devices=True)
        event_type, encrypted = client.encrypt(room_id, "m.reaction", content)
        path = f"/rooms/{quote(room_id, safe='')}/send/{event_type}/{uuid.uuid4()}"
        status, body = await raw_request(client, "PUT", path, encrypted)
        if status == 200 and isinstance(body, dict) and isinstance(body.get("event_id"), str):
            return str(body["event_id"]), "", ""
        body = body if isinstance(body, dict) else {}
        return None, str(body.get("errcode", f"HTTP {status}")), str(body.get("error", ""))

    async def send_file(self, room_id: str, path: Path) -> str:
        try:
            data = path.read_bytes()  # noqa: ASYNC240 (the file to send, read once)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        encrypted = bool(self.room(room_id).encrypted)
        resp, keys = await self.client.upload(
            io.BytesIO(data), content_type=mimetype, filename=path.name,
            encrypt=encrypted, filesize=len(data),
        )
        if not isinstance(resp, UploadResponse):
            check(resp, f"uploading {path.name}")
            raise MatrixRequestError(f"uploading {path.name} failed")
        msgtype = {"image": "m.image", "video": "m.video", "audio": "m.audio"}.get(
            mimetype.split("/")[0], "m.file")
        content: dict[str, Any] = {
            "msgtype": msgtype, "body": path.name, "filename": path.name,
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        if encrypted and keys is not None:
            content["file"] = {**keys, "url": resp.content_uri}
        else:
            content["url"] = resp.content_uri
        return await self.send(room_id, "m.room.message", content)

    # -- reading ------------------------------------------------------------------------------

    async def history(self, room_id: str, want_messages: int) -> list[TimelineEvent]:
        """The room's latest events, oldest first, decrypted where we hold the keys: enough
        pages to show ``want_messages`` messages (edits and reactions do not count)."""
        from client_cli.timeline import build

        token: str | None = self.client.next_batch
        events: list[TimelineEvent] = []
        budget = want_messages * 10 + 200
        while token and len(events) < budget:
            resp = await self.client.room_messages(
                room_id, start=token, direction=MessageDirection.back,
                limit=min(100, max(20, want_messages * 2)),
            )
            resp = check(resp, "reading the room")
            assert isinstance(resp, RoomMessagesResponse)
            page = [e for e in (normalize(ev) for ev in resp.chunk) if e is not None]
            events.extend(page)
            if not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
            if len(build(list(reversed(events)))) >= want_messages:
                break
        return list(reversed(events))

    async def event(self, room_id: str, event_id: str) -> TimelineEvent:
        resp = await self.client.room_get_event(room_id, event_id)
        if not isinstance(resp, RoomGetEventResponse):
            if getattr(resp, "status_code", None) in ("M_NOT_FOUND", "M_FORBIDDEN"):
                raise UnknownEventError(f"unknown event {event_id} in {room_id}")
            check(resp, "fetching the event")
        event = resp.event
        if isinstance(event, MegolmEvent):
            with contextlib.suppress(EncryptionError):
                event = self.client.decrypt_event(event)
        normalized = normalize(event)
        if normalized is None:
            raise UnknownEventError(f"unknown event {event_id} in {room_id}")
        return normalized

    def decrypt_late(self, event: Any) -> Any:
        """Decrypt an event we hold no room key for in memory, after reloading the keys
        from the store: another `rijkschat` process of the same user (a `send` next to a
        running `tail`) may have received or created the key meanwhile."""
        if not isinstance(event, MegolmEvent) or self.client.store is None:
            return event
        self.client.olm.inbound_group_store = self.client.store.load_inbound_group_sessions()
        try:
            return self.client.decrypt_event(event)
        except EncryptionError:
            return event

    async def download(self, content: dict[str, Any]) -> bytes:
        """An attachment's bytes, decrypted and its hash checked for encrypted files."""
        file = content.get("file")
        mxc = file.get("url") if isinstance(file, dict) else content.get("url")
        if not isinstance(mxc, str) or not mxc.startswith("mxc://"):
            raise UsageError("this event has no attachment")
        resp = await self.client.download(mxc=mxc)
        check(resp, "downloading the attachment")
        body = resp.body
        if not isinstance(body, bytes):
            raise MatrixRequestError("downloading the attachment returned no data")
        if not isinstance(file, dict):
            return body
        try:
            return bytes(decrypt_attachment(body, file["key"]["k"], file["hashes"]["sha256"],
                                            file["iv"]))
        except (EncryptionError, KeyError, TypeError, ValueError) as exc:
            raise MatrixRequestError(f"the attachment failed its integrity check: {exc}") from exc


@contextlib.asynccontextmanager
async def connect(storage: Storage, *, sync: bool = True) -> AsyncIterator[Connection]:
    """The stored session, restored on its device and (by default) synced once."""
    session = storage.require()
    client = make_client(storage, session.homeserver, session.user_id)
    try:
        client.restore_login(session.user_id, session.device_id, session.access_token)
        conn = Connection(storage, session, client)
        with reachable("the homeserver", session.homeserver):
            if sync:
                await conn.sync()
            yield conn
    finally:
        await client.close()
        tighten(storage.root)
