"""devices [USER], verify USER DEVICE (interactive emoji SAS verification)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from nio.crypto import OlmDevice
from nio.crypto.sas import Sas, SasState
from nio.exceptions import LocalProtocolError
from rich.text import Text

from client_cli import output
from client_cli.crosssign import device_cross_signed
from client_cli.errors import MatrixRequestError, UsageError, VerificationError
from client_cli.matrix import Connection, check, connect, raw_request, user_id_of
from client_cli.storage import Storage

SYNC_STEP_MS = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="a user's devices (yours by default) and their trust")
    p.add_argument("user", metavar="USER", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=devices)

    p = sub.add_parser("verify", help="verify a device by comparing emoji (SAS)")
    p.add_argument("user", metavar="USER")
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS")
    p.set_defaults(impl=verify)


def fingerprint(key: str) -> str:
    return " ".join(key[i:i + 4] for i in range(0, len(key), 4))


async def _keys_query(conn: Connection, user_id: str) -> dict[str, Any]:
    """The raw /keys/query answer for one user (with the cross-signing keys nio ignores)."""
    status, body = await raw_request(conn.client, "POST", "/keys/query",
                                     {"device_keys": {user_id: []}})
    if status != 200 or not isinstance(body, dict):
        check(await conn.client.whoami(), "querying devices")
        raise MatrixRequestError(f"querying the devices of {user_id} failed: HTTP {status}")
    return body


async def _learn_devices(conn: Connection, user_id: str) -> None:
    """Make nio's device store know ``user_id``'s current devices."""
    conn.client.olm.users_for_key_query.add(user_id)
    check(await conn.client.keys_query(), "querying device keys")


def _trust(conn: Connection, user_id: str, device_id: str) -> str:
    device = conn.client.olm.device_store[user_id].get(device_id)
    if device is None:
        return "unknown"
    if conn.client.olm.is_device_verified(device):
        return "verified"
    if conn.client.olm.is_device_blacklisted(device):
        return "blacklisted"
    return "unverified"


async def devices(args: argparse.Namespace) -> int:
    async with connect(Storage(), sync=False) as conn:
        user_id = user_id_of(args.user, conn.session.server_name) if args.user else conn.user_id
        query = await _keys_query(conn, user_id)
        await _learn_devices(conn, user_id)
        found = query.get("device_keys", {}).get(user_id, {})
        if not isinstance(found, dict) or not found:
            raise UsageError(f"{user_id} has no devices with encryption keys (unknown user?)")
        rows = []
        for device_id, keys in sorted(found.items()):
            ed25519 = str(keys.get("keys", {}).get(f"ed25519:{device_id}", ""))
            rows.append({
                "user_id": user_id,
                "device_id": device_id,
                "display_name": keys.get("unsigned", {}).get("device_display_name"),
                "ed25519": ed25519,
                "this_device": user_id == conn.user_id and device_id == conn.session.device_id,
                "cross_signed": device_cross_signed(query, user_id, device_id),
                "trust": "own device" if (user_id == conn.user_id
                                          and device_id == conn.session.device_id)
                else _trust(conn, user_id, device_id),
            })
    if args.json:
        output.emit_json(rows)
        return 0
    output.table(
        f"Apparaten van {user_id}",
        ("Apparaat", "Naam", "Vingerafdruk (ed25519)", "Cross-signed", "Vertrouwen"),
        [
            (Text(r["device_id"] + (" *" if r["this_device"] else ""), style="bold"),
             r["display_name"] or "", fingerprint(r["ed25519"]),
             "ja" if r["cross_signed"] else "nee",
             Text(str(r["trust"]),
                  style="green" if r["trust"] in ("verified", "own device") else "yellow"))
            for r in rows
        ],
    )
    return 0


async def _ask_yes(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = await _read_line()
    if not sys.stdin.isatty():  # no echo of the typed line: end the prompt's line ourselves
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes", "j", "ja")


async def _read_line() -> str:
    """A line from stdin without a blocking thread (Ctrl-C must not wait for Enter)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def ready() -> None:
        if not answer.done():
            answer.set_result(sys.stdin.readline())

    fd = sys.stdin.fileno()
    try:
        loop.add_reader(fd, ready)
    except (OSError, ValueError, NotImplementedError):  # not pollable (a file, /dev/null)
        return sys.stdin.readline()
    try:
        return await answer
    finally:
        loop.remove_reader(fd)


async def _step(conn: Connection) -> None:
    await conn.sync(timeout_ms=SYNC_STEP_MS, full_state=False)


def _check_cancelled(sas: Sas) -> None:
    if sas.canceled:
        raise VerificationError(f"verification cancelled: {sas.cancel_reason or 'no reason'}")


async def verify(args: argparse.Namespace) -> int:
    async with connect(Storage()) as conn:
        user_id = user_id_of(args.user, conn.session.server_name)
        if user_id == conn.user_id and args.device == conn.session.device_id:
            raise UsageError("that is this device")
        await _learn_devices(conn, user_id)
        device: OlmDevice | None = conn.client.olm.device_store[user_id].get(args.device)
        if device is None:
            raise UsageError(f"{user_id} has no device {args.device} (see `rijkschat devices`)")
        deadline = time.monotonic() + args.timeout
        check(await conn.client.start_key_verification(device), "starting the verification")
        sas = conn.client.olm.get_active_sas(user_id, args.device)
        if sas is None:
            raise VerificationError("the verification could not be started")
        output.info(f"Waiting for {user_id} to accept on {args.device} ...")
        try:
            while sas.state not in (SasState.key_received, SasState.mac_received):
                _check_cancelled(sas)
                if time.monotonic() > deadline:
                    raise VerificationError("the other device did not answer in time")
                await _step(conn)
            output.info("Compare these emoji with the other device:")
            emoji = sas.get_emoji()
            output.line("  ".join(symbol for symbol, _ in emoji))
            output.line(", ".join(name for _, name in emoji))
            if not await _ask_yes("Do they match? [y/N] "):
                check(await conn.client.cancel_key_verification(sas.transaction_id, reject=True),
                      "cancelling the verification")
                raise VerificationError("the emoji do not match: verification cancelled, "
                                        "the device is NOT verified")
            check(await conn.client.confirm_short_auth_string(sas.transaction_id),
                  "confirming the verification")
            while not sas.verified:
                _check_cancelled(sas)
                if time.monotonic() > deadline:
                    raise VerificationError("the other device did not confirm in time")
                await _step(conn)
        except LocalProtocolError as exc:
            raise VerificationError(f"verification failed: {exc}") from exc
        except (VerificationError, asyncio.CancelledError):
            if not sas.canceled:
                sas.cancel()
                await conn.client.to_device(sas.get_cancellation())
            raise
    output.info(f"Verified: {user_id} {args.device}.")
    return 0
