"""Archiver benchmarks (issue 4): print figures, assert nothing.

1. Ingest rate, sync response -> committed, in process: realistic Megolm-encrypted Dutch
   messages decrypted by nio and written by the capture path; first with nio's stock
   per-event jsonschema validator (reference), then with the bot's cached validators.
2. Against a real Synapse and the real archiver process: end-to-end capture latency
   (client send -> committed in the archive) at a steady rate, and the rate at which
   Synapse accepts messages here, measured in the same run.

Run: .venv/bin/python bench/capture_bench.py [--events 20000] [--rate 20] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import vodozemac
from nio import SyncResponse
from nio.crypto.sessions import InboundGroupSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver_bot.archive import ArchivePaths, open_archive  # noqa: E402
from archiver_bot.bot import niopatch  # noqa: E402
from archiver_bot.bot.capture import Capture  # noqa: E402
from archiver_bot.bot.metrics import Metrics  # noqa: E402
from archiver_bot.bot.roster import KnownUsers  # noqa: E402
from archiver_bot.bot.session import ArchiverClient  # noqa: E402
from archiver_bot.bot.state import BotState  # noqa: E402

WORDS = (
    "de minister besluit vandaag over het wetsvoorstel begroting kabinet overleg "
    "nota ambtenaar gemeente provincie financiën onderwijs zorg woningbouw stikstof "
    "coalitie kamerbrief beantwoording vragen spoed vertrouwelijk akkoord morgen "
    "vergadering agenda voorstel reactie persbericht ministerie één café coördinatie"
).split()


def dutch_text(rng: random.Random) -> str:
    target = rng.randint(50, 300)
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < target:
        out.append(rng.choice(WORDS))
    return " ".join(out)[:target]


def build_syncs(n_events: int, rooms: int, client: ArchiverClient) -> list[dict[str, Any]]:
    rng = random.Random(7)
    sender, device = "@minister:bench.localhost", "MINISTERDEV"
    curve, ed = "c" * 43, "e" * 43
    sessions: dict[str, vodozemac.GroupSession] = {}
    room_ids = [f"!room{i}:bench.localhost" for i in range(rooms)]
    for room_id in room_ids:
        gs = vodozemac.GroupSession()
        sessions[room_id] = gs
        inbound = InboundGroupSession(gs.session_key.to_base64(), ed, curve, room_id)
        client.olm.inbound_group_store.add(inbound)
    syncs = []
    per_sync = rooms * 100
    ts = int(time.time() * 1000) - n_events
    for batch in range(0, n_events, per_sync):
        join: dict[str, Any] = {}
        for k, room_id in enumerate(room_ids):
            events = []
            for j in range(100):
                ts += 1
                payload = {
                    "type": "m.room.message",
                    "room_id": room_id,
                    "content": {"msgtype": "m.text", "body": dutch_text(rng)},
                }
                ciphertext = sessions[room_id].encrypt(json.dumps(payload).encode())
                events.append(
                    {
                        "type": "m.room.encrypted",
                        "sender": sender,
                        "origin_server_ts": ts,
                        "event_id": f"$b{batch}r{k}e{j}",
                        "room_id": room_id,
                        "content": {
                            "algorithm": "m.megolm.v1.aes-sha2",
                            "sender_key": curve,
                            "ciphertext": ciphertext.to_base64(),
                            "session_id": sessions[room_id].session_id,
                            "device_id": device,
                        },
                    }
                )
            join[room_id] = {
                "timeline": {"events": events, "limited": False},
                "state": {"events": []},
            }
        syncs.append({"next_batch": f"s{batch}", "rooms": {"join": join}})
    return syncs


async def ingest_rate(n_events: int, label: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        archive = await open_archive(ArchivePaths.for_data_dir(data_dir))
        client = ArchiverClient(
            "http://127.0.0.1:9", "@rijksarchief:bench.localhost", store_path=tmp
        )
        client.restore_login("@rijksarchief:bench.localhost", "ARCHIVERDEV", "token")
        users = KnownUsers(frozenset({"@minister:bench.localhost"}), {})
        state = BotState(data_dir / "rooms.json")
        syncs = build_syncs(n_events, 10, client)
        for room_id in syncs[0]["rooms"]["join"]:
            state.archived.add(room_id)
            state.noticed.add(room_id)
        capture = Capture(client, archive, users, state, Metrics())
        client.on_decrypted = capture.remember_original
        started = time.perf_counter()
        for raw in syncs:
            resp = SyncResponse.from_dict(raw)
            await client.receive_response(resp)
            await capture.handle_sync(resp)
        elapsed = time.perf_counter() - started
        count = 0
        for room_id in state.archived:
            count += len(await archive.archived_event_ids(room_id))
        await archive.close()
        await client.close()
    rate = count / elapsed
    print(f"  {label:<46} {count:>7} events in {elapsed:6.2f} s = {rate:8.0f} events/s")
    return rate


async def latency_run(rate: float, duration: float) -> None:
    from server_bridge.process import terminate
    from tests.e2e_client import E2EUser
    from tests.helpers import start_homeserver

    with tempfile.TemporaryDirectory() as tmp:
        hs = await start_homeserver(Path(tmp) / "data")
        data_dir = hs.settings.data_dir
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "archiver_bot",
            "run",
            "--data-dir",
            str(data_dir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        minister = await E2EUser(hs, "minister", Path(tmp) / "m").start()
        amb = await E2EUser(hs, "ambtenaar1", Path(tmp) / "a").start()
        try:
            room_id = await minister.create_room("bench", invite=[amb.user_id])
            await amb.join(room_id)
            await minister.invite(room_id, hs.user_id("rijksarchief"))
            while hs.user_id("rijksarchief") not in minister.client.rooms[room_id].users:
                await asyncio.sleep(0.2)
                await minister.sync()
            reader = await open_archive(ArchivePaths.for_data_dir(data_dir), role="reader")
            sent_at: dict[str, float] = {}
            arrived: dict[str, float] = {}
            stop = asyncio.Event()

            async def poll() -> None:
                while not stop.is_set() or len(arrived) < len(sent_at):
                    ids = await reader.archived_event_ids(room_id)
                    now = time.perf_counter()
                    for event_id in ids:
                        if event_id in sent_at and event_id not in arrived:
                            arrived[event_id] = now
                    await asyncio.sleep(0.01)

            poller = asyncio.create_task(poll())
            interval = 1.0 / rate
            start = time.perf_counter()
            i = 0
            while time.perf_counter() - start < duration:
                due = start + i * interval
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t0 = time.perf_counter()
                event_id = await (minister if i % 2 else amb).send_text(room_id, f"latency {i}")
                sent_at[event_id] = t0
                i += 1
            stop.set()
            await asyncio.wait_for(poller, 60)
            lat = sorted((arrived[e] - sent_at[e]) * 1000 for e in sent_at)
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(
                f"  capture latency at {rate:.0f} msg/s for {duration:.0f} s "
                f"({len(lat)} messages): p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {lat[-1]:.0f} ms"
            )

            # Synapse's own acceptance rate for encrypted messages, 8 sends in flight.
            count = 0
            t_end = time.perf_counter() + 10

            async def sender(user: E2EUser, k: int) -> None:
                nonlocal count
                n = 0
                while time.perf_counter() < t_end:
                    await user.client.room_send(
                        room_id,
                        "m.room.message",
                        {"msgtype": "m.text", "body": f"load {k} {n}"},
                        ignore_unverified_devices=True,
                    )
                    n += 1
                    count += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(sender(minister if k % 2 else amb, k) for k in range(8)))
            accept = count / (time.perf_counter() - t0)
            print(f"  Synapse accepts {accept:.0f} encrypted messages/s here (8 in flight)")
            await reader.close()
            global SYNAPSE_RATE
            SYNAPSE_RATE = accept
        finally:
            await minister.close()
            await amb.close()
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            await terminate("homeserver", hs.proc)


SYNAPSE_RATE = 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    print("Ingest, sync response -> committed (SQLite, Megolm-decrypted, 50-300 chars):")
    stock = await ingest_rate(args.events, "reference: nio's stock validation")
    niopatch.apply()
    cached = await ingest_rate(args.events, "archiver: cached validators")
    print(f"  speed-up from cached validators: {cached / stock:.2f}x")
    if not args.skip_live:
        print("Against a real Synapse and the real archiver process:")
        await latency_run(args.rate, args.duration)
        print(f"  archiver ingest / Synapse acceptance: {cached / SYNAPSE_RATE:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
