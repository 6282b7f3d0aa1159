"""Generate a hardened, sovereign Synapse configuration.

The secrets are generated once and kept in ``secrets.json`` (mode 0600); the
``homeserver.yaml`` itself is rewritten from them on every start, so that flags such
as ports take effect while every secret stays the same.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from server_bridge.errors import DataDirError

# The system user of Synapse's server notices: the archiver tells senders through it (admin
# API) that their room keys are needed, without a direct room the policy would refuse.
SERVER_NOTICES_LOCALPART = "rijksarchief-meldingen"

_RATE_PILOT: dict[str, Any] = {
    # Raised for a pilot of tens of users (and the test suite) ...
    "rc_message": {"per_second": 50, "burst_count": 500},
    "rc_registration": {"per_second": 1, "burst_count": 20},
    "rc_joins": {
        "local": {"per_second": 20, "burst_count": 200},
        "remote": {"per_second": 0.01, "burst_count": 1},
    },
    "rc_joins_per_room": {"per_second": 20, "burst_count": 200},
    "rc_invites": {
        "per_room": {"per_second": 20, "burst_count": 200},
        "per_user": {"per_second": 20, "burst_count": 200},
        "per_issuer": {"per_second": 20, "burst_count": 200},
    },
    "rc_room_creation": {"per_second": 10, "burst_count": 100},
    "rc_key_requests": {"per_second": 100, "burst_count": 1000},
    "rc_media_create": {"per_second": 20, "burst_count": 200},
    "rc_delayed_event_mgmt": {"per_second": 10, "burst_count": 100},
    "rc_profile": {"per_second": 10, "burst_count": 100},
    "rc_admin_redaction": {"per_second": 10, "burst_count": 100},
    # ... but brute force on passwords stays as hard as Synapse's default:
    # failed_attempts keeps 0.17/s with a burst of 3 per account and address.
    "rc_login": {
        "address": {"per_second": 1, "burst_count": 100},
        "account": {"per_second": 1, "burst_count": 100},
        "failed_attempts": {"per_second": 0.17, "burst_count": 3},
    },
}


@dataclass(frozen=True)
class HomeserverSecrets:
    registration_shared_secret: str
    macaroon_secret_key: str
    form_secret: str

    @classmethod
    def generate(cls) -> HomeserverSecrets:
        def token() -> str:
            alphabet = string.ascii_letters + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(48))

        return cls(token(), token(), token())


@dataclass(frozen=True)
class HomeserverLayout:
    """Where the homeserver keeps its files, all below one directory."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "homeserver.yaml"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def signing_key_file(self) -> Path:
        return self.root / "signing.key"

    @property
    def log_config_file(self) -> Path:
        return self.root / "log.config"

    @property
    def log_file(self) -> Path:
        return self.root / "homeserver.log"

    @property
    def database_file(self) -> Path:
        return self.root / "homeserver.db"

    @property
    def media_dir(self) -> Path:
        return self.root / "media_store"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (never briefly world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create_secrets(layout: HomeserverLayout) -> HomeserverSecrets:
    if layout.secrets_file.exists():
        try:
            data = json.loads(layout.secrets_file.read_text("utf-8"))
            return HomeserverSecrets(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise DataDirError(f"{layout.secrets_file} is unreadable or damaged: {exc}") from exc
    created = HomeserverSecrets.generate()
    write_private(layout.secrets_file, json.dumps(created.__dict__, indent=2) + "\n")
    return created


def ensure_signing_key(layout: HomeserverLayout) -> None:
    """Create the server's Ed25519 signing key in Synapse's format, once."""
    if layout.signing_key_file.exists():
        return
    seed = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    version = "a_" + "".join(secrets.choice(string.ascii_letters) for _ in range(4))
    encoded = base64.b64encode(seed).decode("ascii").rstrip("=")
    write_private(layout.signing_key_file, f"ed25519 {version} {encoded}\n")


def _log_config(layout: HomeserverLayout) -> str:
    return f"""\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.handlers.RotatingFileHandler
    formatter: precise
    filename: {json.dumps(str(layout.log_file))}
    maxBytes: 10485760
    backupCount: 3
    encoding: utf8
  console:
    class: logging.StreamHandler
    formatter: precise
    level: WARNING
loggers:
  synapse.storage.SQL:
    level: WARNING
  twisted:
    level: WARNING
  synapse.logging.context:   # module callbacks make it warn about finished log contexts
    level: ERROR
root:
  level: INFO
  handlers: [file, console]
disable_existing_loggers: false
"""


def postgres_database(
    database: str,
    *,
    user: str = "postgres",
    host: str = "127.0.0.1",
    port: int = 5432,
    password: str | None = None,
) -> dict[str, Any]:
    """Synapse's ``database`` section for PostgreSQL (driver psycopg2). The database must be
    UTF8 with C collation, e.g. ``CREATE DATABASE x ENCODING 'UTF8' LC_COLLATE 'C'
    LC_CTYPE 'C' TEMPLATE template0``."""
    args: dict[str, Any] = {
        "database": database,
        "user": user,
        "host": host,
        "port": port,
        "cp_min": 1,
        "cp_max": 10,
    }
    if password is not None:
        args["password"] = password
    return {"name": "psycopg2", "args": args}


def _y(value: Any) -> str:
    """A YAML scalar or flow collection (JSON is valid YAML)."""
    return json.dumps(value)


def render_homeserver_yaml(
    *,
    layout: HomeserverLayout,
    server_name: str,
    port: int,
    bind_host: str,
    secrets_: HomeserverSecrets,
    modules: list[dict[str, Any]] | None = None,
    app_service_config_files: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    database: dict[str, Any] | None = None,
) -> str:
    """The homeserver.yaml text: each sovereign default on its own commented line.

    ``database`` is Synapse's ``database`` section (see :func:`postgres_database`); the
    default is SQLite in the homeserver's directory."""
    if database is None:
        database = {"name": "sqlite3", "args": {"database": str(layout.database_file)}}
    rate_lines = "\n".join(f"{key}: {_y(value)}" for key, value in _RATE_PILOT.items())
    extra_lines = "\n".join(f"{key}: {_y(value)}" for key, value in (extra or {}).items())
    return f"""\
# Generated by rijkschat-server. Rewritten on every start from secrets.json and the
# command-line flags: change flags, not this file.
server_name: {_y(server_name)}
public_baseurl: {_y(f"http://{bind_host}:{port}/")}
pid_file: {_y(str(layout.root / "homeserver.pid"))}
report_stats: false                         # sovereignty: no phone-home statistics
enable_metrics: false                       # no metrics listener
opentracing: {{enabled: false}}             # no tracing exporter
listeners:
  - port: {port}
    bind_addresses: [{_y(bind_host)}]       # loopback only
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]                     # client API only: no federation listener
        compress: false
federation_domain_whitelist: []             # no federation with any other server
allow_public_rooms_over_federation: false
allow_public_rooms_without_auth: false
trusted_key_servers: []                     # never ask matrix.org (or anyone) for keys
suppress_key_server_warning: true
database: {_y(database)}
log_config: {_y(str(layout.log_config_file))}
media_store_path: {_y(str(layout.media_dir))}
signing_key_path: {_y(str(layout.signing_key_file))}
registration_shared_secret: {_y(secrets_.registration_shared_secret)}
macaroon_secret_key: {_y(secrets_.macaroon_secret_key)}
form_secret: {_y(secrets_.form_secret)}
enable_registration: false                  # accounts only through the roster
allow_guest_access: false
enable_3pid_changes: false
enable_3pid_lookup: false                   # no identity server lookups
# default_identity_server: (none)           # no identity server
url_preview_enabled: false                  # no URL previews (no outbound fetches)
push:
  enabled: false                            # no push gateway: nothing leaves via push
  include_content: false
# integration manager: none is configured or advertised (no .well-known client config)
serve_server_wellknown: false
presence:
  enabled: false
require_auth_for_profile_requests: true
limit_profile_requests_to_users_who_share_rooms: true
user_directory:
  enabled: true
  search_all_users: false
room_list_publication_rules: [{{action: deny}}]
encryption_enabled_by_default_for_room_type: all   # every new room is end-to-end encrypted
max_upload_size: 50M
experimental_features:
  msc2815_enabled: true     # the archiver (a server admin) can fetch the original of an
                            # event redacted before it captured it (redaction_retention_period)
server_notices:                             # the homeserver's own channel for system messages
  system_mxid_localpart: {_y(SERVER_NOTICES_LOCALPART)}   # e.g. "your keys are needed"
  system_mxid_display_name: "Rijksarchief meldingen"
  room_name: "Meldingen van het Rijksarchief"
  auto_join: true                           # the notice is shown at once, no invitation to accept
password_config:
  enabled: true
  policy:
    enabled: true
    minimum_length: 12
{rate_lines}
modules: {_y(modules or [])}
app_service_config_files: {_y(app_service_config_files or [])}
{extra_lines}
"""


def prepare_homeserver(
    *,
    root: Path,
    server_name: str,
    port: int,
    bind_host: str = "127.0.0.1",
    modules: list[dict[str, Any]] | None = None,
    app_service_config_files: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    database: dict[str, Any] | None = None,
) -> HomeserverLayout:
    """Create (first run) or refresh the homeserver's directory; return its layout."""
    layout = HomeserverLayout(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        layout.media_dir.mkdir(exist_ok=True)
        secrets_ = load_or_create_secrets(layout)
        ensure_signing_key(layout)
        layout.log_config_file.write_text(_log_config(layout), "utf-8")
        text = render_homeserver_yaml(
            layout=layout,
            server_name=server_name,
            port=port,
            bind_host=bind_host,
            secrets_=secrets_,
            modules=modules,
            app_service_config_files=app_service_config_files,
            extra=extra,
            database=database,
        )
        write_private(layout.config_file, text)
    except PermissionError as exc:
        raise DataDirError(f"cannot write the homeserver directory {root}: {exc.strerror}") from exc
    return layout


def registration_secret(layout: HomeserverLayout) -> str:
    return load_or_create_secrets(layout).registration_shared_secret
