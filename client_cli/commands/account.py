"""login, logout, whoami."""

from __future__ import annotations

import argparse
import getpass
import shutil
import sys
from pathlib import Path

from nio import AsyncClient, LoginResponse
from rich.text import Text

from client_cli import output
from client_cli.crosssign import ensure_cross_signed
from client_cli.errors import LoginFailedError, NotLoggedInError, UnreachableError, UsageError
from client_cli.matrix import (
    DEVICE_NAME,
    Connection,
    check,
    connect,
    make_client,
    raw_request,
    reachable,
)
from client_cli.storage import DEFAULT_BRIDGE, Session, Storage

DEFAULT_HOMESERVER = "http://127.0.0.1:8008"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("login", help="log in (prompts for what is not given)")
    p.add_argument("--homeserver", metavar="URL", help=f"e.g. {DEFAULT_HOMESERVER}")
    p.add_argument("--user", metavar="USER", help="@user:server or the bare user name")
    p.add_argument("--password-file", metavar="FILE", type=Path,
                   help="read the password from FILE (its first line)")
    p.add_argument("--bridge", metavar="URL",
                   help=f"the bridge's archive API, for `archive` (default {DEFAULT_BRIDGE})")
    p.add_argument("--device-name", default=DEVICE_NAME, help="shown in your device list")
    p.set_defaults(impl=login)

    p = sub.add_parser("logout", help="log out and remove this device and its keys")
    p.set_defaults(impl=logout)

    p = sub.add_parser("whoami", help="show the logged-in user and device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(impl=whoami)


def _ask(prompt: str, default: str | None = None) -> str:
    if not sys.stdin.isatty():
        raise UsageError(f"{prompt.lower()} not given and no terminal to ask on "
                         "(use the command-line options)")
    suffix = f" [{default}]" if default else ""
    sys.stderr.write(f"{prompt}{suffix}: ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    if not answer and default:
        return default
    if not answer:
        raise UsageError(f"no {prompt.lower()} given")
    return answer


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        try:
            text = Path(args.password_file).read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {args.password_file}: "
                             f"{exc.strerror or exc}") from exc
        password = text.splitlines()[0] if text else ""
        if not password:
            raise UsageError(f"the password file {args.password_file} is empty")
        return password
    if not sys.stdin.isatty():
        raise UsageError("password not given and no terminal to ask on (use --password-file)")
    try:
        return getpass.getpass("Password: ", stream=sys.stderr)
    except (EOFError, KeyboardInterrupt) as exc:
        raise UsageError("no password given") from exc


def _same_user(stored: Session, homeserver: str, user: str) -> bool:
    if stored.homeserver.rstrip("/") != homeserver.rstrip("/"):
        return False
    if user.startswith("@") and ":" in user:
        return stored.user_id == user
    return stored.user_id[1:].split(":", 1)[0] == user.lstrip("@")


async def login(args: argparse.Namespace) -> int:
    storage = Storage()
    stored = storage.load()
    homeserver = args.homeserver or _ask(
        "Homeserver", stored.homeserver if stored else DEFAULT_HOMESERVER)
    if not homeserver.startswith(("http://", "https://")):
        raise UsageError(f"the homeserver must be an http:// or https:// URL, not {homeserver!r}")
    user = args.user or _ask("User")
    password = _password(args)
    same_user = stored if stored is not None and _same_user(stored, homeserver, user) else None

    fresh = not storage.root.exists()
    client = make_client(storage, homeserver, user)
    reuse: Session | None = None
    try:
        with reachable("the homeserver", homeserver):
            if same_user is not None:
                if await _device_alive(client, same_user):
                    reuse = same_user  # log in again on the same device: its keys stay valid
                    client.device_id = reuse.device_id
                else:  # logged out elsewhere: the device and its keys are gone on the server
                    _forget_device(storage, same_user)
            resp = await client.login(password, device_name=args.device_name)
            if not isinstance(resp, LoginResponse):
                code = getattr(resp, "status_code", "")
                if code == "M_FORBIDDEN":
                    raise LoginFailedError(f"login as {user} failed: wrong user name or password")
                if code == "M_LIMIT_EXCEEDED":
                    raise LoginFailedError(f"login as {user} failed: too many attempts, "
                                           "wait a minute and try again")
                raise LoginFailedError(f"login as {user} failed: "
                                       f"{getattr(resp, 'message', '') or code}")
            session = Session(
                homeserver=homeserver.rstrip("/"),
                user_id=str(resp.user_id),
                device_id=str(resp.device_id),
                access_token=str(resp.access_token),
                bridge=str(args.bridge or (same_user.bridge if same_user else DEFAULT_BRIDGE)
                           ).rstrip("/"),
            )
            storage.save(session)
            conn = Connection(storage, session, client)
            if client.should_upload_keys:
                check(await client.keys_upload(), "uploading device keys")
            master = await ensure_cross_signed(client, storage.cross_signing_file(session.user_id),
                                                password)
            await conn.sync()
    except (LoginFailedError, UnreachableError):
        if fresh:  # leave nothing behind after a failed first login
            shutil.rmtree(storage.root, ignore_errors=True)
        raise
    finally:
        await client.close()
    how = "same device" if reuse is not None else "new device"
    output.info(f"Logged in as {session.user_id} on {session.device_id} ({how}).")
    if master is None:
        output.info("This account's cross-signing keys were set up on another device: this "
                    "device stays unsigned until you verify it from a device that holds "
                    "them (e.g. Element).")
    return 0


async def _device_alive(client: AsyncClient, stored: Session) -> bool:
    """Whether the stored session's token (and so its device) is still valid."""
    client.access_token = stored.access_token
    try:
        status, body = await raw_request(client, "GET", "/account/whoami")
    finally:
        client.access_token = ""
    return (status == 200 and isinstance(body, dict)
            and body.get("user_id") == stored.user_id
            and body.get("device_id") in (None, stored.device_id))


def _forget_device(storage: Storage, stored: Session) -> None:
    """Remove a dead device's E2E store (its keys would never be uploaded again)."""
    for path in storage.store_dir.glob(f"{stored.user_id}_{stored.device_id}.*"):
        path.unlink(missing_ok=True)


async def logout(args: argparse.Namespace) -> int:
    storage = Storage()
    async with connect(storage, sync=False) as conn:
        user_id, device_id = conn.user_id, conn.session.device_id
        try:
            check(await conn.client.logout(), "logging out")
        except NotLoggedInError:
            pass  # the token was already revoked: forget it here as well
    # The homeserver deleted the device and its keys: its local E2E store is of no more use.
    storage.session_file.unlink(missing_ok=True)
    shutil.rmtree(storage.store_dir, ignore_errors=True)
    output.info(f"Logged out {user_id}; device {device_id} is removed.")
    return 0


async def whoami(args: argparse.Namespace) -> int:
    storage = Storage()
    async with connect(storage, sync=False) as conn:
        resp = check(await conn.client.whoami(), "whoami")
        info = {"user_id": str(resp.user_id), "device_id": conn.session.device_id,
                "homeserver": conn.session.homeserver, "bridge": conn.session.bridge}
    if args.json:
        output.emit_json(info)
    else:
        for key, value in info.items():
            output.line(Text(f"{key + ':':<12}", style="bold"), value)
    return 0
