"""archive rooms | show ROOM | search QUERY | verify ROOM | audit | woo ...: for archivists,
against the bridge's review API (with the archivist's own Matrix session)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from nio import AsyncClient, ErrorResponse
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.text import Text

from client_cli import output
from client_cli.archive_api import ArchiveApi, ArchivedRoom, open_api
from client_cli.errors import ArchiveApiError, UnknownRoomError, UsageError
from client_cli.matrix import reachable, user_id_of
from client_cli.storage import Session, Storage


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    archive = sub.add_parser("archive", help="for archivists: the government archive")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bridge", metavar="URL", help="the bridge (default: as at login)")
    common.add_argument("--purpose", metavar="TEXT",
                        help="why you read (e.g. 'Woo-verzoek 2026-12'), kept in the access log")
    asub = archive.add_subparsers(dest="archive_command", required=True, metavar="COMMAND")

    p = asub.add_parser("rooms", parents=[common], help="the archived rooms")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=rooms)

    p = asub.add_parser("show", parents=[common], help="a room's archived transcript")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N events")
    p.add_argument("--all-types", action="store_true", help="state events too")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=show)

    p = asub.add_parser("search", parents=[common], help="search the archive")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--room", metavar="ROOM")
    p.add_argument("--sender", metavar="USER")
    p.add_argument("--from", dest="from_date", metavar="DATE", help="YYYY-MM-DD[THH:MM]")
    p.add_argument("--to", dest="to_date", metavar="DATE", help="YYYY-MM-DD[THH:MM]")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=search)

    p = asub.add_parser("verify", parents=[common], help="check a room's hash chain")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=verify)

    p = asub.add_parser("audit", parents=[common],
                        help="the access log (who read what), or --completeness")
    p.add_argument("--completeness", action="store_true",
                   help="the completeness report: is every event of the ledger archived?")
    p.add_argument("--user", metavar="USER", help="only this reader's accesses")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=audit)

    woo = asub.add_parser("woo", help="Woo (Wet open overheid) requests and assessments")
    wsub = woo.add_subparsers(dest="woo_command", required=True, metavar="COMMAND")
    p = wsub.add_parser("create", parents=[common], help="register a Woo request")
    p.add_argument("reference", metavar="REF", help="the request's reference, e.g. 2026-0412")
    p.add_argument("--title", required=True, metavar="TEXT")
    p.add_argument("--room", action="append", required=True, metavar="ROOM",
                   help="a room in scope (id, alias or archived name); repeat for more")
    p.add_argument("--received", metavar="DATE", help="date received (default: today)")
    p.add_argument("--from", dest="from_date", metavar="DATE", help="YYYY-MM-DD[THH:MM]")
    p.add_argument("--to", dest="to_date", metavar="DATE",
                   help="YYYY-MM-DD[THH:MM] (a date alone: up to the end of that day)")
    p.add_argument("--query", metavar="WORDS", help="only messages with all these words")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=woo_create)

    p = wsub.add_parser("list", parents=[common], help="the Woo requests")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=woo_list)

    p = wsub.add_parser("show", parents=[common],
                        help="a request's documents in scope and their decisions")
    p.add_argument("reference", metavar="REF")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=woo_show)

    p = wsub.add_parser("assess", parents=[common], help="assess a document of a request")
    p.add_argument("reference", metavar="REF")
    p.add_argument("event_id", metavar="EVENT_ID")
    p.add_argument("--decision", required=True,
                   choices=("openbaar", "deels_openbaar", "niet_openbaar"))
    p.add_argument("--ground", action="append", default=[], metavar="CODE",
                   help="a Woo ground such as 5.1.2e; repeat for more")
    p.add_argument("--span", action="append", default=[], metavar="START:END:GROUND",
                   help="a withheld character range of the text; repeat for more")
    p.add_argument("--note", metavar="TEXT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=woo_assess)

    p = wsub.add_parser("export", parents=[common],
                        help="the publication package (ZIP) of a request")
    p.add_argument("reference", metavar="REF")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the ZIP "
                   "(must not exist yet)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=woo_export)


def _bridge(args: argparse.Namespace, session: Session) -> str:
    url = str(args.bridge or session.bridge).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the bridge must be an http:// or https:// URL, not {url!r}")
    return url


def _ms(date: str | None, what: str) -> int | None:
    if date is None:
        return None
    try:
        return int(datetime.fromisoformat(date).timestamp() * 1000)
    except ValueError as exc:
        raise UsageError(f"{what} must be a date like 2026-11-25 or 2026-11-25T14:30") from exc


async def _resolve(api: ArchiveApi, session: Session, arg: str) -> str:
    """A room id, an alias (asked of the homeserver) or an archived room's name."""
    if arg.startswith("!"):
        return arg
    if arg.startswith("#"):
        alias = arg if ":" in arg else f"{arg}:{session.server_name}"
        client = AsyncClient(session.homeserver, session.user_id)
        try:
            with reachable("the homeserver", session.homeserver):
                resp = await client.room_resolve_alias(alias)
        finally:
            await client.close()
        if isinstance(resp, ErrorResponse):
            raise UnknownRoomError(f"unknown room alias {alias}")
        return str(resp.room_id)
    rooms = await api.rooms()
    for exact in (True, False):
        matches = [r.room_id for r in rooms
                   if (r.name == arg if exact else (r.name or "").casefold() == arg.casefold())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownRoomError(f"room name {arg!r} is ambiguous in the archive "
                                   f"({', '.join(sorted(matches))}); use the room id")
    raise UnknownRoomError(f"unknown room {arg!r}: no archived room has that name")


def _open(args: argparse.Namespace) -> tuple[Session, Any]:
    session = Storage().require()
    return session, open_api(_bridge(args, session), session.access_token, args.purpose)


def _room_row(room: ArchivedRoom) -> list[Any]:
    return [
        Text(room.name or "(naamloos)", style="bold"), str(room.event_count),
        output.timestamp(room.last_ts, seconds=False),
        Text(str(room.undecryptable), style="red" if room.undecryptable else ""),
        room.retention or "", "ja" if room.legal_hold else "",
        ", ".join(room.key_officials), Text(room.room_id, style="dim"),
    ]


async def rooms(args: argparse.Namespace) -> int:
    _, api_cm = _open(args)
    async with api_cm as api:
        found = await api.rooms()
    if args.json:
        output.emit_json([r.raw for r in found])
    elif not found:
        output.info("The archive holds no rooms yet.")
    else:
        output.table(None, ("Kamer", "Events", "Laatste", "Onleesbaar", "Bewaren",
                            "Hold", "Sleutelfunctionarissen", "Id"),
                     [_room_row(r) for r in found])
    return 0


def _event_text(event: dict[str, Any]) -> Text:
    content = event.get("content") if isinstance(event.get("content"), dict) else {}
    etype = str(event.get("type", ""))
    text = Text()
    text.append(output.timestamp(event.get("origin_server_ts")), style="dim")
    text.append("  ")
    text.append(str(event.get("sender", "?")), style="bold cyan")
    text.append(": ")
    decryption = event.get("decryption")
    if decryption == "undecryptable":
        text.append("[kan niet ontsleutelen]", style="red")
    elif etype == "m.room.message":
        body = content.get("body") if isinstance(content, dict) else None
        text.append(str(body) if body is not None else "")
    elif etype == "m.reaction":
        rel = content.get("m.relates_to", {}) if isinstance(content, dict) else {}
        text.append(f"reageerde {rel.get('key', '?')} op {rel.get('event_id', '?')}", style="dim")
    else:
        text.append(f"[{etype}]", style="dim")
    if event.get("redacted_by"):
        text.append(f"  (verwijderd door {event['redacted_by']})", style="yellow")
    edits = event.get("edits") or []
    if edits:
        text.append(f"  ({len(edits)}x bewerkt)", style="yellow")
    if decryption == "decrypted":
        text.append("  🔒", style="green")
    text.append(f"  {event.get('event_id', '')}", style="dim")
    return text


async def show(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    session, api_cm = _open(args)
    async with api_cm as api:
        room_id = await _resolve(api, session, args.room)
        events = await api.events(room_id, args.limit)
    if args.json:
        output.emit_json(events)
        return 0
    output.line(Text(room_id, style="bold"), Text(f"  {len(events)} events", style="dim"))
    for event in events:
        if not args.all_types and event.get("state_key") is not None:
            continue
        output.line(_event_text(event))
    return 0


async def search(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    session, api_cm = _open(args)
    async with api_cm as api:
        room = await _resolve(api, session, args.room) if args.room else None
        sender = user_id_of(args.sender, session.server_name) if args.sender else None
        hits = await api.search(args.query, room=room, sender=sender,
                                from_ts=_ms(args.from_date, "--from"),
                                to_ts=_ms(args.to_date, "--to"), limit=args.limit)
    if args.json:
        output.emit_json([h.raw for h in hits])
        return 0
    if not hits:
        output.info(f"No archived messages match {args.query!r}.")
        return 0
    output.table(None, ("Tijd", "Kamer", "Afzender", "Bericht", "Event"), [
        (output.timestamp(h.event.get("origin_server_ts"), seconds=False),
         h.room_name or h.room_id,
         str(h.event.get("sender", "")),
         str((h.event.get("content") or {}).get("body", "")), str(h.event.get("event_id", "")))
        for h in hits
    ])
    return 0


async def verify(args: argparse.Namespace) -> int:
    session, api_cm = _open(args)
    async with api_cm as api:
        room_id = await _resolve(api, session, args.room)
        report = await api.verify(room_id)
    if args.json:
        output.emit_json(report.raw)
    elif report.ok:
        output.line(Text("intact", style="bold green"),
                    f": {report.checked} events of {room_id} checked, no problems")
    else:
        output.line(Text("NIET INTACT", style="bold red"),
                    f": {len(report.problems)} problem(s) in {room_id}")
        for problem in report.problems:
            output.line(f"  - {problem}")
    return 0 if report.ok else 1


async def audit(args: argparse.Namespace) -> int:
    session, api_cm = _open(args)
    async with api_cm as api:
        if args.completeness:
            report = await api.completeness()
        else:
            user = user_id_of(args.user, session.server_name) if args.user else None
            entries = await api.access_log(limit=args.limit, user=user)
    if args.completeness:
        if args.json:
            output.emit_json(report)
        else:
            totals = report.get("totals") or {}
            state = Text("volledig", style="bold green") if report.get("complete") \
                else Text("ONVOLLEDIG", style="bold red")
            output.line(state, "  " + "  ".join(f"{k}: {v}" for k, v in totals.items()))
            if report.get("ledger_incomplete"):
                output.line(Text("LEDGER ONVOLLEDIG", style="bold red"),
                            "  " + str(report.get("ledger_incomplete_reason") or ""))
            output.table(None, ("Kamer", "Ledger", "Ontbreekt", "Wacht", "Onleesbaar",
                                "Onbekend bij ledger"), [
                (str(r.get("room_id")), str(r.get("ledger_events")), str(r.get("missing")),
                 str(r.get("pending")), str(r.get("undecryptable")),
                 str(len(r.get("unknown_to_ledger") or [])))
                for r in report.get("rooms") or [] if isinstance(r, dict)
            ])
        return 0 if report.get("complete") else 1
    if args.json:
        output.emit_json(entries)
    elif not entries:
        output.info("The access log is empty.")
    else:
        output.table(None, ("Tijd", "Wie", "Doel", "Actie", "Details"), [
            (output.timestamp(_ms_of(e.get("ts"))), str(e.get("user_id", "")),
             str(e.get("purpose") or ""), str(e.get("action", "")), _details(e.get("details")))
            for e in entries
        ])
    return 0


def _ms_of(ts: Any) -> float | None:
    """Access-log times may be seconds or milliseconds."""
    if not isinstance(ts, int | float):
        return None
    return float(ts) * 1000 if ts < 1e11 else float(ts)


def _details(details: Any) -> str:
    if isinstance(details, dict):
        return ", ".join(f"{k}={v}" for k, v in details.items() if v is not None)
    return "" if details is None else str(details)


# ---- Woo ------------------------------------------------------------------------------------
def _until_ms(date: str | None) -> int | None:
    """``--to``: a date alone includes that whole day."""
    if date is None:
        return None
    end = _ms(date, "--to")
    assert end is not None
    if "T" not in date and " " not in date:
        end += 24 * 3600 * 1000 - 1
    return end


def _span(raw: str) -> dict[str, Any]:
    parts = raw.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or not parts[2]:
        raise UsageError(f"--span must be START:END:GROUND (e.g. 12:25:5.1.2e), not {raw!r}")
    return {"start": int(parts[0]), "end": int(parts[1]), "ground": parts[2]}


async def woo_create(args: argparse.Namespace) -> int:
    session, api_cm = _open(args)
    async with api_cm as api:
        rooms = [await _resolve(api, session, room) for room in args.room]
        created = await api.woo_create(
            reference=args.reference, title=args.title, rooms=rooms, received=args.received,
            from_ts=_ms(args.from_date, "--from"), to_ts=_until_ms(args.to_date),
            query=args.query,
        )
    if args.json:
        output.emit_json(created)
    else:
        output.line(Text("Woo-verzoek geregistreerd", style="bold green"),
                    f": {created.get('reference')} (id {created.get('id')})")
    return 0


async def woo_list(args: argparse.Namespace) -> int:
    _, api_cm = _open(args)
    async with api_cm as api:
        found = await api.woo_requests()
    if args.json:
        output.emit_json(found)
    elif not found:
        output.info("No Woo requests yet.")
    else:
        output.table(None, ("Kenmerk", "Titel", "Ontvangen", "Kamers", "Zoekterm", "Id"), [
            (Text(str(r.get("reference")), style="bold"), str(r.get("title", "")),
             str(r.get("received", "")), ", ".join(str(x) for x in r.get("rooms") or []),
             str(r.get("query") or ""), Text(str(r.get("id")), style="dim"))
            for r in found
        ])
    return 0


def _decision(assessment: Any) -> str:
    if not isinstance(assessment, dict):
        return "niet beoordeeld"
    text = str(assessment.get("decision", "")).replace("_", " ")
    grounds = ", ".join(str(g) for g in assessment.get("grounds") or [])
    return f"{text} ({grounds})" if grounds else text


async def woo_show(args: argparse.Namespace) -> int:
    _, api_cm = _open(args)
    async with api_cm as api:
        case = await api.woo_find(args.reference)
    if args.json:
        output.emit_json(case)
        return 0
    documents = [d for d in case.get("documents") or [] if isinstance(d, dict)]
    output.line(Text(f"Woo-verzoek {case.get('reference')}", style="bold"),
                f": {case.get('title')} · {len(documents)} documenten, "
                f"{case.get('assessed', 0)} beoordeeld")
    output.table(None, ("#", "Tijd", "Afzender", "Soort", "Besluit", "Tekst", "Event"), [
        (str(n), output.timestamp(d.get("origin_server_ts"), seconds=False),
         str(d.get("sender", "")), str(d.get("kind", "")), _decision(d.get("assessment")),
         str(d.get("text", "")), str(d.get("event_id", "")))
        for n, d in enumerate(documents, 1)
    ])
    return 0


async def woo_assess(args: argparse.Namespace) -> int:
    spans = [_span(raw) for raw in args.span]
    _, api_cm = _open(args)
    async with api_cm as api:
        case = await api.woo_find(args.reference)
        saved = await api.woo_assess(
            str(case["id"]), args.event_id, decision=args.decision, grounds=args.ground,
            spans=spans, note=args.note,
        )
    if args.json:
        output.emit_json(saved)
    else:
        output.line(Text("Beoordeling vastgelegd", style="bold green"),
                    f": {args.event_id} {_decision(saved)}"
                    f" ({len(saved.get('history') or [])} beoordeling(en) in de geschiedenis)")
    return 0


def _new_file(out: Path) -> Path:
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out} exists already; choose another --out")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a directory")
    return out


def _publish(tmp: str, out: Path) -> None:
    """Check the download is a ZIP, then give it its name (never over an existing file)."""
    if not zipfile.is_zipfile(tmp):
        raise ArchiveApiError("the bridge sent something that is not a ZIP")
    try:
        os.link(tmp, out)  # unlike rename, a link never replaces an existing file
    except FileExistsError:
        raise UsageError(f"{out} appeared meanwhile; nothing overwritten") from None
    except OSError:  # no hard links on this file system
        if out.exists():
            raise UsageError(f"{out} appeared meanwhile; nothing overwritten") from None
        os.replace(tmp, out)


async def woo_export(args: argparse.Namespace) -> int:
    """Download the package into a temporary file beside ``--out``, then rename it; an
    existing file is never overwritten. A progress bar on a terminal."""
    out = _new_file(Path(args.out))
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    show = output.console().is_terminal and not args.json
    progress = Progress(
        TextColumn("[bold]Publicatiepakket"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TextColumn("{task.fields[docs]}"),
        console=output.console(), transient=True, disable=not show,
    )
    task = progress.add_task("export", total=None, docs="")
    try:
        with os.fdopen(fd, "wb") as fh, progress:
            def started(length: int | None, documents: int | None) -> None:
                progress.update(task, total=length,
                                docs=f"{documents} documenten" if documents is not None else "")

            def sink(chunk: bytes) -> None:
                nonlocal size
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                progress.update(task, completed=size)

            _, api_cm = _open(args)
            async with api_cm as api:
                case = await api.woo_find(args.reference)
                await api.woo_export(str(case["id"]), sink, started)
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp_name, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    sha = digest.hexdigest()
    if args.json:
        output.emit_json({"file": str(out), "sha256": sha, "size": size,
                          "reference": case.get("reference")})
    else:
        output.line(Text("Publicatiepakket geschreven", style="bold green"), f": {out}")
        output.line(f"SHA-256: {sha}")
        output.line(f"Grootte: {size} bytes")
    return 0
