"""Archive store benchmark: ingest, search, verify and memory, next to plain SQLite.

    python bench/archive_bench.py            # 1,000,000 messages (several minutes)
    python bench/archive_bench.py --n 50000  # quick run

Prints, in one run on the same generated data (realistic Dutch messages of 50-300
characters, 200 rooms, 400 senders):

* plain ``sqlite3`` executemany insert and an FTS5 plaintext index: the reference floor;
* the archive's ingest (validate + AES-256-GCM + hash chain + blind index + insert);
* search latency (newest 50 hits, one word / two words ANDed) for the archive and FTS5;
* ``verify`` of all entries;
* resident memory sampled during the archive ingest (should stay flat).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver_bot.archive import Actor, ArchivePaths, EventRecord, open_archive  # noqa: E402

COMMON = """de het een en van in is op te dat die niet met voor zijn er aan om ook als bij
maar dan nog wel naar uit kan wat dit door over ze zich meer al worden moet we ik je u
hij zij wij jullie hun ons onze mijn jouw geen heel goed graag even morgen vandaag
gisteren vanavond vanmiddag straks later vroeg laat snel direct binnenkort week maand
jaar dag uur minuut maandag dinsdag woensdag donderdag vrijdag zaterdag zondag januari
februari maart april mei juni juli augustus september oktober november december
minister staatssecretaris premier kabinet ministerie kamer tweede eerste fractie
woordvoerder directeur secretaris-generaal ambtenaar adviseur jurist voorlichter
persvoorlichter raad commissie overleg vergadering afspraak agenda notulen besluit
besluitvorming voorstel wetsvoorstel amendement motie debat stemming begroting
voorjaarsnota miljoenennota prinsjesdag brief kamerbrief nota memo stuk stukken
bijlage concept versie reactie antwoord vraag vragen kamervragen beantwoording
termijn deadline planning prioriteit risico probleem oplossing advies analyse
rapport onderzoek evaluatie uitvoering beleid strategie crisis incident veiligheid
defensie financien justitie onderwijs zorg klimaat energie stikstof woningbouw
migratie asiel toeslagen belasting economie europa brussel navo gemeente provincie
waterschap burgemeester wethouder gedeputeerde ja nee oke prima akkoord dank bedankt
alvast groet groeten hoi hallo beste collega collegas iedereen samen team bellen
mailen sturen delen lezen bekijken bespreken afstemmen voorbereiden regelen
plannen checken toelichten aanpassen goedkeuren tekenen publiceren melden
informeren waarschuwen escaleren uitstellen verplaatsen annuleren bevestigen
komt gaat zal zou wil kunnen moeten mogen willen hebben heb heeft had hadden
was waren wordt werd geweest gedaan gezien gezegd gestuurd gelezen besproken
vertrouwelijk geheim openbaar intern extern gevoelig urgent belangrijk nieuw oud
groot klein lang kort hoog laag eerst daarna tenslotte echter daarom omdat
zodat hoewel terwijl tijdens sinds tot vanaf zonder tegen tussen onder boven""".split()
STEMS = """begrotings beleids crisis defensie energie klimaat stikstof woning zorg
onderwijs migratie asiel toeslagen belasting veiligheids kabinets kamer ministers
europa navo gemeente provincie water wet regel informatie communicatie pers media
verkiezings coalitie oppositie fractie personeels organisatie project programma
uitvoerings handhavings toezicht inspectie subsidie investerings bezuinigings
digitaliserings privacy data cyber infrastructuur verkeer spoor luchtvaart haven
landbouw natuur visserij""".split()
HEADS = """overleg brief nota plan akkoord debat besluit advies rapport kader
wet regeling maatregel pakket fonds budget tekort overschot planning agenda
vergadering commissie team groep traject proces dossier stuk memo analyse
onderzoek evaluatie strategie aanpak visie beleid systeem netwerk centrum dienst
afdeling directie raad punt vraag antwoord lijst tabel overzicht""".split()

ARCHIVIST = Actor("@bench:rijk.example", "benchmark")


class Corpus:
    """Deterministic Dutch-like messages with a Zipfian word distribution."""

    def __init__(self, seed: int = 2026) -> None:
        rng = random.Random(seed)
        compounds = [s + h for s in STEMS for h in HEADS]
        rng.shuffle(compounds)
        names = [f"dossier{n}" for n in range(2000)] + [f"{n}" for n in range(1, 400)]
        self.vocabulary = COMMON + compounds + names
        weights = [1.0 / (rank + 1) ** 1.07 for rank in range(len(self.vocabulary))]
        total = sum(weights)
        self._cum = list(itertools.accumulate(w / total for w in weights))
        self.seed = seed

    def word(self, rng: random.Random) -> str:
        return self.vocabulary[
            min(bisect.bisect_left(self._cum, rng.random()), len(self.vocabulary) - 1)
        ]

    def messages(self, n: int) -> Iterator[tuple[int, str, str, int, str]]:
        rng = random.Random(self.seed)
        ts = 1_704_067_200_000  # 2024-01-01
        for i in range(n):
            target = rng.randint(50, 300)
            parts: list[str] = []
            length = -1
            while length < target:
                w = self.word(rng)
                parts.append(w)
                length += len(w) + 1
            body = " ".join(parts)[:300]
            body = body[0].upper() + body[1:] + rng.choice((".", "?", "!", ""))
            ts += rng.randint(200, 4000)
            yield (
                i,
                f"!room{rng.randrange(200)}:rijk.example",
                f"@user{rng.randrange(400)}:rijk.example",
                ts,
                body,
            )


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def sqlite_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


def bench_plain(corpus: Corpus, n: int, batch: int, workdir: Path) -> float:
    conn = sqlite_connect(workdir / "plain.db")
    conn.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, room_id TEXT, sender TEXT, "
        "ts INTEGER, body TEXT)"
    )
    started = time.perf_counter()
    rows: list[tuple[str, str, str, int, str]] = []
    spent = 0.0
    for i, room, sender, ts, body in corpus.messages(n):
        rows.append((f"$e{i}:rijk.example", room, sender, ts, body))
        if len(rows) == batch:
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?)", rows)
            conn.execute("COMMIT")
            spent += time.perf_counter() - t
            rows = []
    if rows:
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        spent += time.perf_counter() - t
    conn.close()
    del started
    return n / spent


def bench_fts(
    corpus: Corpus, n: int, batch: int, workdir: Path, one: list[str], two: list[str]
) -> tuple[float, list[float], list[float]]:
    conn = sqlite_connect(workdir / "fts.db")
    conn.execute(
        "CREATE TABLE events (pk INTEGER PRIMARY KEY, event_id TEXT UNIQUE, room_id TEXT, "
        "sender TEXT, ts INTEGER, body TEXT)"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE events_fts USING fts5(body, content='events', "
        "content_rowid='pk', tokenize='unicode61 remove_diacritics 2')"
    )
    spent = 0.0
    rows: list[tuple[int, str, str, str, int, str]] = []

    def flush() -> float:
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)", rows)
        conn.executemany(
            "INSERT INTO events_fts (rowid, body) VALUES (?, ?)", [(r[0], r[5]) for r in rows]
        )
        conn.execute("COMMIT")
        return time.perf_counter() - t

    for i, room, sender, ts, body in corpus.messages(n):
        rows.append((i + 1, f"$e{i}:rijk.example", room, sender, ts, body))
        if len(rows) == batch:
            spent += flush()
            rows = []
    if rows:
        spent += flush()
    query = (
        "SELECT e.event_id, e.body FROM events_fts f JOIN events e ON e.pk = f.rowid "
        "WHERE events_fts MATCH ? ORDER BY f.rowid DESC LIMIT 50"
    )
    lat_one, lat_two = [], []
    for q, sink in ((one, lat_one), (two, lat_two)):
        for text in q:
            t = time.perf_counter()
            conn.execute(query, (" AND ".join(f'"{w}"' for w in text.split()),)).fetchall()
            sink.append((time.perf_counter() - t) * 1000)
    conn.close()
    return n / spent, lat_one, lat_two


async def bench_archive(
    corpus: Corpus,
    n: int,
    batch: int,
    workdir: Path,
    one: list[str],
    two: list[str],
    database_url: str | None = None,
) -> dict[str, object]:
    paths = ArchivePaths.for_data_dir(workdir / "archive")
    archive = await open_archive(paths, database_url, checkpoint_every=100_000)
    spent = 0.0
    samples: list[tuple[int, float]] = [(0, rss_mb())]
    step = max(n // 10, 1)
    records: list[EventRecord] = []
    done = 0
    for i, room, sender, ts, body in corpus.messages(n):
        records.append(
            EventRecord(
                event_id=f"$e{i}:rijk.example",
                room_id=room,
                sender=sender,
                origin_server_ts=ts,
                type="m.room.message",
                content={"msgtype": "m.text", "body": body},
                decryption="decrypted",
                sender_device="DEVICE",
                sender_key="curve25519",
                session_id="session",
            )
        )
        if len(records) == batch:
            t = time.perf_counter()
            await archive.ingest(records, sync_token=f"s{i}")
            spent += time.perf_counter() - t
            done += len(records)
            records = []
            if done % step < batch:
                samples.append((done, rss_mb()))
    if records:
        t = time.perf_counter()
        await archive.ingest(records, sync_token="last")
        spent += time.perf_counter() - t
        done += len(records)
    samples.append((done, rss_mb()))

    lat_one, lat_two, hits_one, hits_two = [], [], [], []
    for q, sink, hits in ((one, lat_one, hits_one), (two, lat_two, hits_two)):
        for text in q:
            t = time.perf_counter()
            found = await archive.search(ARCHIVIST, text, limit=50)
            sink.append((time.perf_counter() - t) * 1000)
            hits.append(len(found))
    t = time.perf_counter()
    report = await archive.verify()
    verify_s = time.perf_counter() - t
    entries = sum(r.entries for r in report.rooms.values())
    await archive.close()
    size = sum(f.stat().st_size for f in paths.root.glob("archive.db*"))
    return {
        "ingest": n / spent,
        "one": lat_one,
        "two": lat_two,
        "hits_one": statistics.mean(hits_one),
        "hits_two": statistics.mean(hits_two),
        "verify_s": verify_s,
        "verify_ok": report.ok,
        "entries": entries,
        "rss": samples,
        "db_mb": size / 1e6,
    }


def queries(corpus: Corpus, count: int) -> tuple[list[str], list[str]]:
    """Content words people search for: ranks 60-3000 of the vocabulary."""
    rng = random.Random(7)
    pool = [w for w in corpus.vocabulary[60:3000] if not w.isdigit()]
    one = [rng.choice(pool) for _ in range(count)]
    two = [f"{rng.choice(pool)} {rng.choice(pool)}" for _ in range(count)]
    return one, two


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="messages (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=1000, help="events per ingest transaction")
    parser.add_argument("--queries", type=int, default=200, help="queries per search kind")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--database-url",
        default=None,
        help="run the archive on this (empty) database, e.g. postgresql+asyncpg://...; "
        "the floors stay on SQLite",
    )
    parser.add_argument("--skip-floors", action="store_true", help="only the archive figures")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="archive-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = Corpus()
    one, two = queries(corpus, args.queries)
    lengths = [len(m[4]) for m in corpus.messages(min(args.n, 20_000))]
    print(
        f"archive bench: n={args.n:,} batch={args.batch} cpus={os.cpu_count()} "
        f"sqlite={sqlite3.sqlite_version} workdir={workdir}"
    )
    print(
        f"messages: {min(lengths)}-{max(lengths)} chars, mean {statistics.mean(lengths):.0f}; "
        f"vocabulary {len(corpus.vocabulary):,} words (Zipf)"
    )
    try:
        fts_one: list[float] = []
        fts_two: list[float] = []
        if not args.skip_floors:
            plain = bench_plain(corpus, args.n, args.batch, workdir)
            print(f"[floor] plain sqlite3 executemany insert      {plain:>10,.0f} events/s")
            fts_rate, fts_one, fts_two = bench_fts(corpus, args.n, args.batch, workdir, one, two)
            print(f"[floor] sqlite3 + FTS5 plaintext index         {fts_rate:>10,.0f} events/s")
        res = asyncio.run(
            bench_archive(corpus, args.n, args.batch, workdir, one, two, args.database_url)
        )
        print(
            f"[store] archive ingest (encrypt+chain+index)   {res['ingest']:>10,.0f} events/s"
            "   goal >= 5,000"
        )
        a_one, a_two = res["one"], res["two"]
        assert isinstance(a_one, list)
        assert isinstance(a_two, list)
        print(f"search, newest 50 hits, {args.queries} queries each (ms): p50 / p95 / max")
        print(
            f"  archive one word     {pct(a_one, 50):7.2f} / {pct(a_one, 95):7.2f} / "
            f"{max(a_one):7.2f}   goal p95 <= 20   (mean hits {res['hits_one']:.1f})"
        )
        print(
            f"  archive two words    {pct(a_two, 50):7.2f} / {pct(a_two, 95):7.2f} / "
            f"{max(a_two):7.2f}   goal p95 <= 100  (mean hits {res['hits_two']:.1f})"
        )
        if fts_one:
            print(
                f"  FTS5 one word        {pct(fts_one, 50):7.2f} / {pct(fts_one, 95):7.2f} / "
                f"{max(fts_one):7.2f}"
            )
            print(
                f"  FTS5 two words       {pct(fts_two, 50):7.2f} / {pct(fts_two, 95):7.2f} / "
                f"{max(fts_two):7.2f}"
            )
        print(
            f"verify of {res['entries']:,} entries: {res['verify_s']:.1f} s "
            f"(ok={res['verify_ok']})   goal <= 30 s"
        )
        rss = res["rss"]
        assert isinstance(rss, list)
        print(
            "resident memory during ingest (events: MB): "
            + ", ".join(f"{d:,}: {m:.0f}" for d, m in rss)
        )
        print(f"archive database size: {res['db_mb']:.0f} MB")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
