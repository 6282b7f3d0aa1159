"""Woo export benchmark, end to end: a real archive, a request, assessments, the export.

    python bench/woo_export_bench.py                # 1,000 and 10,000 messages
    python bench/woo_export_bench.py --sizes 2000   # quick run

For every size, in fresh child processes (so each peak RSS is its own phase's):

1. *build*: an archive written through the store's public API (``open_archive``,
   ``Archive.ingest``, ``store_attachment``, ``set_room_info``) with N messages in three
   rooms (Dutch texts of 50-300 characters; a reply every 10th, an edit every 20th, a
   reaction every 10th, a PNG image every 1,000th, a PDF file every 100th), a roster, a Woo
   request covering the three rooms and an assessment of every document through
   ``Archive.woo_assess`` (80 % openbaar, 15 % deels openbaar with one or two spans, 5 %
   niet openbaar). Not timed as part of the export.
2. *reference*: the same documents read through the archive's reader API alone
   (``Archive.room_events`` page by page plus ``Archive.woo_assessments``), nothing kept.
3. *export*: :func:`server_bridge.woo.export.export_case`, the code the API's export job
   runs (case, verify of the rooms, PDF laid out and PAdES-signed, inventory, signed
   manifest, ZIP written to a file). RSS is sampled every 500 documents.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from archiver_bot.archive import (  # noqa: E402
    Actor,
    ArchivePaths,
    EventRecord,
    WooSpan,
    open_archive,
)
from server_bridge.review.service import Reader, ReviewService  # noqa: E402
from server_bridge.woo.export import export_case  # noqa: E402

SERVER = "rijk.example"
ROOMS = [f"!kamer{i}:{SERVER}" for i in range(3)]
BASE_TS = 1_767_254_400_000  # 2026-01-01T08:00:00Z
ARCHIVIST = f"@archivaris:{SERVER}"
WORDS = """de het een en van in is op te dat die niet met voor zijn er aan om ook als bij maar
dan nog wel naar uit kan wat dit door over ze zich meer al worden moet we ik je u minister
staatssecretaris kabinet ministerie kamer overleg vergadering afspraak agenda besluit voorstel
begroting brief kamerbrief nota memo stuk bijlage concept versie reactie antwoord vraag termijn
planning risico probleem oplossing advies rapport onderzoek beleid crisis veiligheid één
coördinatie geïnformeerd ruïne café""".split()
PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 200


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def png() -> bytes:
    img = Image.new("RGB", (640, 480), (40, 100, 180))
    ImageDraw.Draw(img).ellipse((100, 100, 540, 380), fill=(240, 190, 20))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _record(n: int, room: str, sender: str, content: dict[str, Any],
            type_: str = "m.room.message") -> EventRecord:
    return EventRecord(
        event_id=f"$b{n}",
        room_id=room,
        sender=sender,
        origin_server_ts=BASE_TS + n * 1000,
        type=type_,
        content=content,
        decryption="decrypted",
        sender_device="DEVICE1",
        sender_key="curve-key",
        session_id="megolm-1",
        encrypted={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": f"AwgA{n}"},
    )


async def build(data_dir: Path, n: int) -> dict[str, Any]:
    rng = random.Random(2026)
    senders = [f"@ambtenaar{i}:{SERVER}" for i in range(20)] + [f"@minister:{SERVER}"]
    (data_dir / "roster.json").write_text(json.dumps({"users": [
        {"user_id": s, "role": "key_official" if "minister" in s else "official",
         "display_name": s[1:].split(":")[0].capitalize()} for s in senders
    ]}), "utf-8")
    image = png()
    archive = await open_archive(ArchivePaths.for_data_dir(data_dir))
    texts: dict[str, str] = {}
    attachments: list[tuple[str, str, bytes, str, str]] = []
    seq = 0
    try:
        batch: list[EventRecord] = []
        last: dict[str, str] = {}
        for i in range(1, n + 1):
            seq += 1
            room = ROOMS[i % len(ROOMS)]
            words: list[str] = []
            target = rng.randint(50, 300)
            while sum(len(w) + 1 for w in words) < target:
                words.append(rng.choice(WORDS))
            text = " ".join(words).capitalize() + "."
            content: dict[str, Any] = {"msgtype": "m.text", "body": text}
            if i % 1000 == 0:
                text = f"foto-{i}.png"
                content = {"msgtype": "m.image", "body": text, "filename": text,
                           "info": {"mimetype": "image/png", "size": len(image)}}
            elif i % 100 == 0:
                text = f"stuk-{i}.pdf"
                content = {"msgtype": "m.file", "body": text, "filename": text,
                           "info": {"mimetype": "application/pdf", "size": len(PDF_BYTES)}}
            elif i % 10 == 3 and room in last:
                content["m.relates_to"] = {"m.in_reply_to": {"event_id": last[room]}}
            record = _record(seq, room, senders[i % len(senders)], content)
            batch.append(record)
            texts[record.event_id] = text
            if content["msgtype"] == "m.image":
                attachments.append((record.event_id, room, image, text, "image/png"))
            elif content["msgtype"] == "m.file":
                attachments.append((record.event_id, room, PDF_BYTES, text, "application/pdf"))
            if i % 20 == 7:  # an edit of this message (the edit is a document too)
                seq += 1
                new = text + " (aangepast)"
                edit = _record(seq, room, record.sender, {
                    "msgtype": "m.text", "body": "* " + new,
                    "m.new_content": {"msgtype": "m.text", "body": new},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": record.event_id},
                })
                batch.append(edit)
                texts[edit.event_id] = new
            if i % 10 == 5:  # a reaction (not a document)
                seq += 1
                batch.append(_record(seq, room, senders[(i + 3) % len(senders)], {
                    "m.relates_to": {"rel_type": "m.annotation", "event_id": record.event_id,
                                     "key": "✓"}}, type_="m.reaction"))
            last[room] = record.event_id
            if len(batch) >= 1000:
                result = await archive.ingest(batch)
                assert not result.rejected, result.rejected
                batch = []
        if batch:
            result = await archive.ingest(batch)
            assert not result.rejected, result.rejected
        for event_id, room, data, name, mimetype in attachments:
            await archive.store_attachment(event_id, room, data, name, mimetype, True)
        for k, room in enumerate(ROOMS):
            await archive.set_room_info(room, name=f"Kamer {k}", members=senders,
                                        key_officials=[f"@minister:{SERVER}"])
        actor = Actor(ARCHIVIST, "benchmark")
        request = await archive.woo_create_request(
            actor, reference="2026-0412", title="Bench", received="2026-04-12", rooms=ROOMS,
        )
        for event_id, text in texts.items():
            roll = rng.random()
            if roll < 0.80 or len(text) < 30:
                await archive.woo_assess(actor, request.id, event_id, decision="openbaar",
                                         grounds=[])
            elif roll < 0.95:
                spans = [WooSpan(2, 12, "5.1.2e")]
                if len(text) > 40 and rng.random() < 0.5:
                    spans.append(WooSpan(20, 30, "5.1.2e"))
                await archive.woo_assess(actor, request.id, event_id,
                                         decision="deels_openbaar", grounds=["5.1.2e"],
                                         spans=spans)
            else:
                await archive.woo_assess(actor, request.id, event_id,
                                         decision="niet_openbaar",
                                         grounds=[rng.choice(["5.2", "5.1.2i"])])
    finally:
        await archive.close()
    return {"request": request.id, "events": seq, "documents": len(texts)}


async def reference(data_dir: Path, request_id: str) -> dict[str, Any]:
    """The same events and assessments read through the archive's reader API, nothing kept."""
    archive = await open_archive(ArchivePaths.for_data_dir(data_dir), role="reader")
    actor = Actor(ARCHIVIST, "benchmark")
    start = time.perf_counter()
    count = 0
    chars = 0
    try:
        for room in ROOMS:
            after: str | None = None
            while True:
                page, after = await archive.room_events(actor, room, after, 1000)
                count += len(page)
                chars += sum(len(str((e.content or {}).get("body", ""))) for e in page)
                if after is None or not page:
                    break
        assessments = len(await archive.woo_assessments(actor, request_id))
    finally:
        await archive.close()
    return {"seconds": time.perf_counter() - start, "events": count,
            "assessments": assessments, "peak_rss_mb": peak_mb()}


async def export(data_dir: Path, request_id: str, out: Path) -> dict[str, Any]:
    review = ReviewService(data_dir)
    reader = Reader(ARCHIVIST, "benchmark", "bench")
    samples: list[tuple[int, float]] = [(0, rss_mb())]

    def progress(count: int) -> None:
        if count % 500 == 0:
            samples.append((count, rss_mb()))

    start = time.perf_counter()
    try:
        _, result = await export_case(review, reader, request_id, data_dir, out, progress)
    finally:
        await review.close()
    took = time.perf_counter() - start
    return {"seconds": took, "zip_mb": out.stat().st_size / 1e6, "samples": samples,
            "peak_rss_mb": peak_mb(), "documents": samples[-1][0]}


def child(phase: str, data_dir: Path, arg: str) -> dict[str, Any]:
    if phase == "build":
        return asyncio.run(build(data_dir, int(arg)))
    if phase == "reference":
        return asyncio.run(reference(data_dir, arg))
    return asyncio.run(export(data_dir, arg, data_dir / "export.zip"))


def run_child(phase: str, data_dir: Path, arg: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", phase, str(data_dir), arg],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"{phase} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--keep", type=Path, help="build into (and keep) DIR/N; reuse it")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, directory, arg = args.child
        print(json.dumps(child(phase, Path(directory), arg)))
        return
    print(f"Woo export end to end, {os.cpu_count()} CPU, Python {sys.version.split()[0]}")
    for n in args.sizes:
        tmp = args.keep / str(n) if args.keep else Path(tempfile.mkdtemp(prefix="woo-bench-"))
        try:
            t0 = time.perf_counter()
            if (tmp / "built.json").exists():
                built = json.loads((tmp / "built.json").read_text())
            else:
                tmp.mkdir(parents=True, exist_ok=True)
                built = run_child("build", tmp, str(n))
                (tmp / "built.json").write_text(json.dumps(built))
            setup = time.perf_counter() - t0
            ref = run_child("reference", tmp, built["request"])
            exp = run_child("export", tmp, built["request"])
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        samples = ", ".join(f"{c:,}: {mb:.0f}" for c, mb in exp["samples"])
        print(
            f"  {n:>6} messages ({built['events']:,} events, {built['documents']:,} "
            f"assessed documents; setup {setup:.0f} s)\n"
            f"    reference: reader API read of all events + assessments "
            f"{ref['seconds']:.2f} s, peak RSS {ref['peak_rss_mb']:.0f} MB\n"
            f"    export:    {exp['seconds']:.1f} s ({n / exp['seconds']:.0f} msg/s), "
            f"ZIP {exp['zip_mb']:.1f} MB, peak RSS {exp['peak_rss_mb']:.0f} MB\n"
            f"    RSS during export (documents: MB): {samples}"
        )


if __name__ == "__main__":
    main()
