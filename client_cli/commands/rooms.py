"""rooms, create, invite, join, leave."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from nio import ErrorResponse, RoomPreset
from rich.text import Text

from client_cli import output
from client_cli.errors import UnknownRoomError, UsageError
from client_cli.matrix import Connection, RoomInfo, check, connect, raw_request, user_id_of
from client_cli.storage import Storage

ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
ARCHIVED = "gearchiveerd"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rooms", help="your rooms, with encryption and the archiving marker")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=rooms)

    p = sub.add_parser("create", help="create an (end-to-end encrypted) room")
    p.add_argument("name")
    p.add_argument("--invite", metavar="USER", nargs="+", default=[])
    p.add_argument("--direct", action="store_true", help="a direct chat with the one invitee")
    p.add_argument("--topic")
    p.add_argument("--alias", metavar="NAME", help="also reachable as #NAME:server")
    p.set_defaults(impl=create)

    p = sub.add_parser("invite", help="invite users to a room")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("users", metavar="USER", nargs="+")
    p.set_defaults(impl=invite)

    p = sub.add_parser("join", help="join a room (id, alias, or the name of an invitation)")
    p.add_argument("room", metavar="ROOM")
    p.set_defaults(impl=join)

    p = sub.add_parser("leave", help="leave a room")
    p.add_argument("room", metavar="ROOM")
    p.set_defaults(impl=leave)


def _row(room: RoomInfo) -> list[Any]:
    return [
        Text(room.name, style="bold"),
        Text(ARCHIVED, style="bold yellow") if room.archived
        else Text("? (zie na deelname)", style="dim") if room.archived is None else "",
        Text("versleuteld", style="green") if room.encrypted
        else Text("NIET versleuteld", style="red") if room.membership == "join" else "",
        "lid" if room.membership == "join" else "uitgenodigd",
        str(room.members),
        Text(room.room_id, style="dim"),
    ]


async def rooms(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        found = await conn.rooms()
    if args.json:
        output.emit_json([r.as_json() for r in found])
    elif not found:
        output.info("You are in no rooms yet (`rijkschat create NAME`).")
    else:
        output.table(None, ("Kamer", "Archief", "Versleuteling", "Status", "Leden", "Id"),
                     [_row(r) for r in found])
    return 0


def _warn_if_archived(conn: Connection, room_id: str) -> None:
    if conn.is_archived(room_id):
        notice = (conn.archiving.get(room_id) or {}).get("notice")
        if isinstance(notice, str) and notice:
            output.info(f"Let op ({ARCHIVED}): {notice}")
        else:
            output.info(f"Let op: dit gesprek wordt {ARCHIVED} door het Rijksarchief.")


async def _mark_direct(conn: Connection, room_id: str, user_id: str) -> None:
    """Record the room in our m.direct account data, as Element does for a direct chat."""
    path = f"/user/{quote(conn.user_id, safe='')}/account_data/m.direct"
    status, current = await raw_request(conn.client, "GET", path)
    if status != 200 or not isinstance(current, dict):
        current = {}
    rooms = [r for r in current.get(user_id, []) if isinstance(r, str)]
    current[user_id] = [*rooms, room_id]
    status, _ = await raw_request(conn.client, "PUT", path, current)
    if status != 200:
        output.info(f"(could not mark {room_id} as a direct chat: HTTP {status})")


async def create(args: argparse.Namespace) -> int:
    if args.direct and len(args.invite) != 1:
        raise UsageError("--direct needs exactly one --invite USER")
    async with connect(Storage(), sync=False) as conn:
        invitees = [user_id_of(u, conn.session.server_name) for u in args.invite]
        alias = args.alias.lstrip("#").split(":", 1)[0] if args.alias else None
        resp = await conn.client.room_create(
            alias=alias,
            name=args.name,
            topic=args.topic,
            invite=invitees,
            is_direct=args.direct,
            preset=RoomPreset.trusted_private_chat if args.direct else RoomPreset.private_chat,
            initial_state=[ENCRYPTION_STATE],
        )
        room_id = str(check(resp, f"creating {args.name!r}").room_id)
        if args.direct:
            await _mark_direct(conn, room_id, invitees[0])
    print(room_id)
    return 0


async def invite(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id = await conn.resolve_room(args.room)
        for user in args.users:
            user_id = user_id_of(user, conn.session.server_name)
            check(await conn.client.room_invite(room_id, user_id), f"inviting {user_id}")
            output.info(f"Invited {user_id} to {conn.room(room_id).display_name}.")
    return 0


async def join(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        target = args.room
        if not target.startswith(("!", "#")):
            target = await conn.resolve_room(target, invited=True)
        elif target.startswith("#") and ":" not in target:
            target = f"{target}:{conn.session.server_name}"
        resp = await conn.client.join(target)
        if isinstance(resp, ErrorResponse) and resp.status_code in ("M_NOT_FOUND",
                                                                     "M_FORBIDDEN"):
            raise UnknownRoomError(f"cannot join {args.room}: {resp.message}")
        room_id = str(check(resp, f"joining {args.room}").room_id)
        await conn.sync(full_state=True)
        _warn_if_archived(conn, room_id)
    print(room_id)
    return 0


async def leave(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id = await conn.resolve_room(args.room, invited=True)
        check(await conn.client.room_leave(room_id), f"leaving {args.room}")
        output.info(f"Left {room_id}.")
    return 0
