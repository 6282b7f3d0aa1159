"""Woo publication package benchmark: 10,000 messages exported, time and memory.

    python bench/woo_bench.py              # 1,000, 5,000 and 10,000 messages
    python bench/woo_bench.py --sizes 2000 # quick run

Every size runs in a fresh child process, so its peak RSS is its own. In each child, on the
same generated documents (Dutch messages of 50-300 characters; 80 % public, 15 % partly public
with one or two withheld spans, 5 % not public; edits, replies, reactions; a PNG image every
1,000 messages, a listed PDF every 100):

* reference: the same message texts written to a plain text file (the floor);
* the package: PDF laid out, PAdES-signed, inventory xlsx + csv, manifest signed, ZIP
  streamed to a file. RSS is sampled every 500 documents and the peak reported.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from server_bridge.woo.model import (  # noqa: E402
    Assessment,
    AttachmentInfo,
    Edit,
    ExportInfo,
    PackageInput,
    Reaction,
    ReplyRef,
    Span,
    WooDocument,
    WooRequestInfo,
)
from server_bridge.woo.package import build_package  # noqa: E402
from server_bridge.woo.signing import ensure_pdf_signing_identity  # noqa: E402

WORDS = """de het een en van in is op te dat die niet met voor zijn er aan om ook als bij maar
dan nog wel naar uit kan wat dit door over ze zich meer al worden moet we ik je u minister
staatssecretaris kabinet ministerie kamer overleg vergadering afspraak agenda besluit voorstel
begroting brief kamerbrief nota memo stuk bijlage concept versie reactie antwoord vraag termijn
planning risico probleem oplossing advies rapport onderzoek beleid crisis veiligheid één
coördinatie geïnformeerd ruïne café""".split()
GROUNDS = {
    "5.1.2e": "de eerbiediging van de persoonlijke levenssfeer",
    "5.1.2i": "het goed functioneren van de staat",
    "5.2": "persoonlijke beleidsopvattingen in documenten voor intern beraad",
}
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def png() -> bytes:
    img = Image.new("RGB", (640, 480), (40, 100, 180))
    ImageDraw.Draw(img).ellipse((100, 100, 540, 380), fill=(240, 190, 20))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def documents(n: int) -> Iterator[WooDocument]:
    rng = random.Random(11)
    image = png()
    for i in range(1, n + 1):
        words = []
        while sum(len(w) + 1 for w in words) < rng.randint(50, 300):
            words.append(rng.choice(WORDS))
        text = " ".join(words).capitalize() + "."
        roll = rng.random()
        if roll < 0.80:
            assessment = Assessment("openbaar")
        elif roll < 0.95:
            spans = []
            start = 0
            for _ in range(rng.randint(1, 2)):
                s = rng.randint(start, max(start, len(text) - 12))
                if s + 10 > len(text):
                    break
                spans.append(Span(s, s + 10, "5.1.2e"))
                start = s + 11
            assessment = Assessment("deels_openbaar", ("5.1.2e",), tuple(spans))
        else:
            assessment = Assessment("niet_openbaar", (rng.choice(["5.2", "5.1.2i"]),))
        ts = T0 + timedelta(seconds=37 * i)
        kind = "chatbericht"
        attachment = None
        if i % 1000 == 0:
            kind = "bijlage"
            attachment = AttachmentInfo(
                f"foto-{i}.png", "image/png", len(image), hashlib.sha256(image).hexdigest(), image
            )
        elif i % 100 == 0:
            kind = "bijlage"
            attachment = AttachmentInfo(f"stuk-{i}.pdf", "application/pdf", 123_456, "ab" * 32)
        yield WooDocument(
            number=f"{i:05d}",
            event_id=f"$e{i}",
            room_id=f"!kamer{i % 7}:rijk.example",
            room_name=f"Kamer {i % 7}",
            sender_id=f"@ambtenaar{i % 40}:rijk.example",
            sender_name=f"Ambtenaar {i % 40}",
            sender_function="beleidsadviseur",
            ts=ts,
            kind=kind,  # type: ignore[arg-type]
            text=text,
            assessment=assessment,
            edits=(Edit(ts + timedelta(seconds=5), text + " (aangepast)"),)
            if rng.random() < 0.05
            else (),
            reply_to=ReplyRef(f"{i - 1:05d}", f"$e{i - 1}")
            if i > 1 and rng.random() < 0.1
            else None,
            reactions=(Reaction("✓", "Ambtenaar 3"),) if rng.random() < 0.1 else (),
            attachment=attachment,
        )


def child(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # reference: the same texts to a plain file
        start = time.perf_counter()
        with (tmp / "plain.txt").open("w", encoding="utf-8") as fh:
            for doc in documents(n):
                fh.write(f"{doc.number} {doc.ts.isoformat()} {doc.sender_name}: {doc.text}\n")
        plain = time.perf_counter() - start
        identity = ensure_pdf_signing_identity(tmp / "keys")
        key = Ed25519PrivateKey.generate()
        pkg = PackageInput(
            WooRequestInfo("2026-0412", "Bench", date(2026, 4, 12), "7 kamers"),
            GROUNDS,
            ExportInfo("@archivaris:rijk.example", datetime.now(UTC)),
            {"ok": True},
        )
        samples: list[float] = [rss_mb()]
        base = samples[0]

        def progress(count: int) -> None:
            if count % 500 == 0:
                samples.append(rss_mb())

        start = time.perf_counter()
        with (tmp / "package.zip").open("wb") as out:
            build_package(
                pkg,
                documents(n),
                out,
                sign_manifest=key.sign,
                pdf_identity=identity,
                workdir=tmp,
                progress=progress,
            )
        took = time.perf_counter() - start
        size = (tmp / "package.zip").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux
    return {
        "n": n,
        "plain_s": plain,
        "package_s": took,
        "zip_mb": size / 1e6,
        "rss_start_mb": base,
        "rss_at_500_mb": samples[1] if len(samples) > 1 else base,
        "rss_last_sample_mb": samples[-1],
        "peak_rss_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    print(f"Woo package, {os.cpu_count()} CPU, Python {sys.version.split()[0]}")
    for n in args.sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"  {n:>6} messages: reference plain file {r['plain_s']:.2f} s; package "
            f"{r['package_s']:.1f} s ({n / r['package_s']:.0f} msg/s), ZIP {r['zip_mb']:.1f} MB; "
            f"RSS start {r['rss_start_mb']:.0f} MB, after 500 docs {r['rss_at_500_mb']:.0f} MB, "
            f"last sample {r['rss_last_sample_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
