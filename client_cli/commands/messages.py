"""send, reply, edit, react, redact, read, tail, download."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from nio import MegolmEvent
from rich.text import Text

from client_cli import output
from client_cli.errors import UsageError
from client_cli.matrix import Connection, check, connect, normalize
from client_cli.storage import Storage
from client_cli.timeline import Message, TimelineEvent, build, describe

TAIL_POLL_MS = 30_000
KEY_WAIT_POLL_MS = 1_000
KEY_WAIT_SECONDS = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("send", help="send a message (TEXT, standard input, or --file)")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("text", metavar="TEXT", nargs="?")
    p.add_argument("--file", metavar="PATH", type=Path, help="send a file (encrypted)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--notice", action="store_true", help="send as a notice")
    kind.add_argument("--emote", action="store_true", help="send as an action (/me)")
    p.set_defaults(impl=send)

    p = sub.add_parser("reply", help="reply to a message")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("event", metavar="EVENT")
    p.add_argument("text", metavar="TEXT")
    p.set_defaults(impl=reply)

    p = sub.add_parser("edit", help="edit one of your messages")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("event", metavar="EVENT")
    p.add_argument("text", metavar="TEXT")
    p.set_defaults(impl=edit)

    p = sub.add_parser("react", help="react to a message, e.g. with 👍")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("event", metavar="EVENT")
    p.add_argument("key", metavar="REACTION")
    p.set_defaults(impl=react)

    p = sub.add_parser("redact", help="remove a message")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("event", metavar="EVENT")
    p.add_argument("--reason")
    p.set_defaults(impl=redact)

    p = sub.add_parser("read", help="the room's latest messages, decrypted")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=read)

    p = sub.add_parser("tail", help="follow a room live until Ctrl-C")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(impl=tail)

    p = sub.add_parser("download", help="save a message's attachment, decrypted")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("event", metavar="EVENT")
    p.add_argument("-o", "--output", type=Path, metavar="PATH",
                   help="where to save (default: the file's name, here)")
    p.set_defaults(impl=download)


def _event_id(arg: str) -> str:
    if not arg.startswith("$"):
        raise UsageError(f"not an event id: {arg!r} (event ids start with $; see `read`)")
    return arg


def _text_content(text: str, args: argparse.Namespace | None = None) -> dict[str, Any]:
    msgtype = "m.text"
    if args is not None and getattr(args, "notice", False):
        msgtype = "m.notice"
    elif args is not None and getattr(args, "emote", False):
        msgtype = "m.emote"
    return {"msgtype": msgtype, "body": text}


async def send(args: argparse.Namespace) -> int:
    if args.file is not None and args.text is not None:
        raise UsageError("give either TEXT or --file, not both")
    text = args.text
    if args.file is None and text is None:
        if sys.stdin.isatty():
            raise UsageError("nothing to send: give TEXT, --file PATH, or pipe the text in")
        text = sys.stdin.read().rstrip("\n")
    if args.file is None and not text:
        raise UsageError("nothing to send: the message is empty")
    async with connect(Storage()) as conn:
        room_id = await conn.resolve_room(args.room)
        if args.file is not None:
            event_id = await conn.send_file(room_id, Path(args.file))
        else:
            event_id = await conn.send(room_id, "m.room.message", _text_content(text, args))
    print(event_id)
    return 0


async def _target(conn: Connection, room_arg: str, event_arg: str) -> tuple[str, TimelineEvent]:
    room_id = await conn.resolve_room(room_arg)
    return room_id, await conn.event(room_id, _event_id(event_arg))


async def reply(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id, original = await _target(conn, args.room, args.event)
        content = {**_text_content(args.text),
                   "m.relates_to": {"m.in_reply_to": {"event_id": original.event_id}}}
        event_id = await conn.send(room_id, "m.room.message", content)
    print(event_id)
    return 0


async def edit(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id, original = await _target(conn, args.room, args.event)
        if original.sender != conn.user_id:
            raise UsageError("you can only edit your own messages")
        if original.redacted_by is not None:
            raise UsageError("that message was removed")
        new = _text_content(args.text)
        content = {**_text_content(f"* {args.text}"), "m.new_content": new,
                   "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id}}
        event_id = await conn.send(room_id, "m.room.message", content)
    print(event_id)
    return 0


async def react(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id, original = await _target(conn, args.room, args.event)
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": original.event_id,
                                    "key": args.key}}
        event_id = await conn.send(room_id, "m.reaction", content)
    print(event_id)
    return 0


async def redact(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id, original = await _target(conn, args.room, args.event)
        resp = await conn.client.room_redact(room_id, original.event_id, reason=args.reason)
        event_id = str(check(resp, "removing the message").event_id)
    print(event_id)
    return 0


def _message_line(conn: Connection, room_id: str, message: Message) -> Text:
    text = Text()
    text.append(output.timestamp(message.ts), style="dim")
    text.append("  ")
    text.append(conn.display_name(room_id, message.sender), style="bold cyan")
    text.append(": ")
    if message.reply_to:
        text.append(f"(antwoord op {message.reply_to}) ", style="dim")
    style = "italic dim" if message.redacted or message.undecryptable else ""
    body = message.body
    if message.redacted:
        by = message.redacted_by
        who = f" door {conn.display_name(room_id, by)}" if by and by != "?" else ""
        body = f"{body}{who}"
    elif message.msgtype == "m.emote":
        body = f"* {conn.display_name(room_id, message.sender)} {body}"
    elif message.attachment is not None:
        size = message.attachment.get("size")
        body = f"[bestand] {body}" + (f" ({size} bytes)" if isinstance(size, int) else "")
    text.append(body, style=style)
    if message.edited:
        text.append(" (bewerkt)", style="yellow")
    for key, senders in message.reactions.items():
        text.append(f"  {key} {len(senders)}", style="magenta")
    text.append(f"  {message.event_id}", style="dim")
    return text


async def read(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    async with connect(Storage()) as conn:
        room_id = await conn.resolve_room(args.room)
        messages = build(await conn.history(room_id, args.limit))[-args.limit:]
        if args.json:
            output.emit_json([
                {**m.as_json(), "sender_name": conn.display_name(room_id, m.sender)}
                for m in messages
            ])
            return 0
        room = conn.room(room_id)
        header = Text(room.display_name, style="bold")
        if conn.is_archived(room_id):
            header.append("  gearchiveerd", style="bold yellow")
        output.line(header)
        for message in messages:
            output.line(_message_line(conn, room_id, message))
    return 0


async def tail(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id = await conn.resolve_room(args.room)
        name = conn.room(room_id).display_name
        marker = " (gearchiveerd)" if conn.is_archived(room_id) else ""
        output.info(f"Live in {name}{marker}; Ctrl-C stops.")
        # Encrypted events whose room key has not arrived yet, with when we first saw them:
        # the key usually follows within a sync or two.
        waiting: list[tuple[Any, float]] = []
        while True:
            resp = await conn.sync(timeout_ms=KEY_WAIT_POLL_MS if waiting else TAIL_POLL_MS,
                                   full_state=False)
            ready: list[Any] = []
            still: list[tuple[Any, float]] = []
            for raw, since in waiting:
                decrypted = conn.decrypt_late(raw)
                if decrypted is not raw or time.monotonic() - since > KEY_WAIT_SECONDS:
                    ready.append(decrypted)
                else:
                    still.append((raw, since))
            waiting = still
            joined = resp.rooms.join.get(room_id)
            for raw in joined.timeline.events if joined is not None else []:
                decrypted = conn.decrypt_late(raw)
                if isinstance(decrypted, MegolmEvent):
                    waiting.append((decrypted, time.monotonic()))
                else:
                    ready.append(decrypted)
            for raw in ready:
                _tail_line(conn, room_id, raw, args.json)


def _tail_line(conn: Connection, room_id: str, raw: Any, as_json: bool) -> None:
    event = normalize(raw)
    if event is None:
        return
    if as_json:
        output.emit_json_line({**event.as_json(), "room_id": room_id})
        return
    description = describe(event)
    if description is None:
        return
    text = Text()
    text.append(output.timestamp(event.ts), style="dim")
    text.append("  ")
    text.append(conn.display_name(room_id, event.sender), style="bold cyan")
    text.append(": ")
    text.append(description)
    text.append(f"  {event.event_id}", style="dim")
    output.line(text)


async def download(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        room_id, event = await _target(conn, args.room, args.event)
        if event.redacted_by is not None:
            raise UsageError("that message was removed")
        name = str(event.content.get("filename") or event.content.get("body") or "bijlage")
        target = args.output or Path(Path(name).name or "bijlage")
        if target.exists() and not target.is_file():
            raise UsageError(f"{target} exists and is not a file")
        if args.output is None and target.exists():
            raise UsageError(f"{target} exists already (use --output PATH)")
        data = await conn.download(event.content)
    target.write_bytes(data)
    output.info(f"Saved {len(data)} bytes to {target}.")
    return 0
