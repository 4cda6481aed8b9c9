"""All settings in one frozen object, read once at start-up from CLAIMCAM_* variables and/or TOML."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.object_store import parse_endpoint

if TYPE_CHECKING:
    from media.ice import IceSettings

ENV_PREFIX = "CLAIMCAM_"
# S3 bucket names: 3..63 of lower-case letters, digits, dots and hyphens, a letter or digit at both ends.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text}, **kw)


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = _doc("Address the HTTP server binds to.", default="127.0.0.1")
    port: int = _doc("TCP port of the HTTP server.", default=8080)
    public_url: str = _doc("Base URL put into claimant links; default `http://{host}:{port}`.", default="")
    data_dir: str = _doc("Folder for the SQLite file, local objects and the instance secret.", default="./var")
    database_url: str = _doc(
        "SQLAlchemy URL: `sqlite:///path` or `postgresql://user:pw@host/db`; "
        "default `sqlite+aiosqlite:///{data_dir}/claimcam.db`.",
        default="",
    )
    storage_dir: str = _doc("Local object store folder; default `{data_dir}/objects`.", default="")
    recordings_dir: str = _doc(
        "Folder of the recordings being written (spool files, filed and removed when a recording stops, "
        "recovered at start-up after a crash); default `{data_dir}/recordings`. A local disk; processes of "
        "one host may share it.",
        default="",
    )
    pending_uploads_dir: str = _doc(
        "Folder of captures the object store did not take while it was down or failing: kept here, filed as "
        "`pending`, and uploaded by a background uploader when the store answers again (also after a restart); "
        "default `{data_dir}/pending-uploads`. A local disk; processes of one host may share it.",
        default="",
    )
    upload_retry_s: float = _doc(
        "Pause before pending captures are tried again while the object store is down; each next pause is 2x "
        "longer (at most 60 s).",
        default=2.0,
    )
    object_store: str = _doc(
        "`local` (the folder `storage_dir`, streamed by this server) or `s3` (a bucket over the S3 API: "
        "MinIO, AWS S3...; browsers get presigned URLs).",
        default="local",
    )
    s3_endpoint: str = _doc(
        "S3 server as `host[:port]` (TLS per `s3_secure`) or `http://host[:port]` / `https://host[:port]` "
        "(the scheme decides TLS), e.g. `https://s3.eu-north-1.amazonaws.com`. Presigned URLs point here, "
        "so browsers must reach it.",
        default="",
    )
    s3_bucket: str = _doc("Bucket of the captures; created at start-up when missing.", default="claimcam")
    s3_access_key: str = _doc("S3 access key id.", default="")
    s3_secret_key: str = _doc("S3 secret key.", default="", repr=False)
    s3_region: str = _doc("S3 region, e.g. `eu-north-1`; empty: asked from the server.", default="")
    s3_secure: bool = _doc("Use TLS for an `s3_endpoint` given without a scheme.", default=True)
    presign_expiry_s: int = _doc(
        "How long a presigned URL to a picture or video stays valid, in seconds (1..604800).", default=300
    )
    redis_url: str = _doc("Redis URL for multi-node Socket.IO; empty keeps the in-memory manager.", default="")
    secret: str = _doc(
        "Instance secret that claimant link tokens are derived from; all nodes need the same one. "
        "Empty: generated once into `{data_dir}/secret.key`.",
        default="",
    )
    jwt_secret: str = _doc("HS256 key for staff JWTs; empty: derived from `secret`.", default="")
    jwt_public_key: str = _doc(
        "PEM text, or a path to a PEM file, of the RS256 public key; when set only RS256 tokens are accepted.",
        default="",
    )
    jwt_audience: str = _doc("Required `aud` claim of staff JWTs; empty: not checked.", default="")
    jwt_issuer: str = _doc("Required `iss` claim of staff JWTs; empty: not checked.", default="")
    email_delivery: str = _doc("`outbox` (store, show on /dev/outbox) or `smtp`.", default="outbox")
    sms_delivery: str = _doc("`outbox` or `gateway` (HTTP SMS gateway).", default="outbox")
    smtp_host: str = _doc("SMTP server host.", default="127.0.0.1")
    smtp_port: int = _doc("SMTP server port.", default=25)
    smtp_username: str = _doc("SMTP login; empty: no AUTH.", default="")
    smtp_password: str = _doc("SMTP password.", default="")
    smtp_starttls: bool = _doc("Upgrade the SMTP connection with STARTTLS.", default=False)
    smtp_tls: bool = _doc("Connect to SMTP over implicit TLS (port 465 style).", default=False)
    smtp_sender: str = _doc("From address of invite emails.", default="claimcam@localhost")
    sms_gateway_url: str = _doc(
        'URL the SMS gateway takes `POST {"to","from","text"}` at.', default=""
    )
    sms_gateway_token: str = _doc("Bearer token sent to the SMS gateway.", default="")
    sms_sender: str = _doc("Sender name or number of invite SMS.", default="claimcam")
    delivery_max_attempts: int = _doc("Attempts per message before delivery gives up.", default=6)
    delivery_first_retry_s: float = _doc(
        "Delay before the first retry; each next one is 3x longer (at most 15 min).", default=5.0
    )
    expiry_sweep_s: float = _doc("How often expired invites are closed.", default=60.0)
    camera_switch_timeout_s: float = _doc(
        "How long the claimant has to answer a camera-switch request before it expires.", default=30.0
    )
    reconnect_grace_s: float = _doc(
        "How long an invite stays IN_CALL after the claimant's connection is lost (noticed by the ping below, or "
        "at once when the connection closes), waiting for him to reconnect; a recording goes on meanwhile. "
        "Then the call ends (ACTIVE). 0: it ends at once. `end_call` always ends it at once.",
        default=20.0,
    )
    socket_ping_interval_s: float = _doc(
        "How often the server pings each Socket.IO connection (Engine.IO `pingInterval`).", default=25.0
    )
    socket_ping_timeout_s: float = _doc(
        "How long a ping may go unanswered before the connection counts as lost (Engine.IO `pingTimeout`).",
        default=20.0,
    )
    redis_health_interval_s: float = _doc(
        "How often the Socket.IO Redis listener is probed end to end (and restarted when dead).", default=5.0
    )
    ice_host_addresses: str = _doc(
        "Comma-separated addresses the server's WebRTC peers gather host candidates on; empty: every "
        "interface but loopback (aioice's default). Loopback-only set-ups, like the tests, set `127.0.0.1`.",
        default="",
    )
    ice_public_address: str = _doc(
        "Address announced in the server's host candidates instead of the interface's own "
        "(1:1 NAT, a cloud VM's public IP); empty: the interface address.",
        default="",
    )
    turn_urls: str = _doc(
        "Comma-separated `turn:`/`turns:` URLs of the TURN server, e.g. "
        "`turn:turn.example.com:3478?transport=udp`; empty: no TURN. No STUN server is ever used by default.",
        default="",
    )
    turn_secret: str = _doc("coturn's `static-auth-secret` (`use-auth-secret`); required with `turn_urls`.", default="")
    turn_ttl_s: int = _doc("How long the TURN credentials handed out stay valid, in seconds.", default=3600)
    media_relay: str = _doc(
        "How the claimant's media reaches the inspectors: `passthrough` (forwarded encoded, never decoded) or "
        "`naive` (decoded and encoded again for each inspector, as a plain aiortc relay does; only for "
        "`claimcam bench calls` to compare against).",
        default="passthrough",
    )
    max_body_bytes: int = _doc("Largest accepted request body.", default=1_048_576)
    demo: bool = _doc("Demo mode: seeds demo data, enables /dev/* pages and APIs.", default=False)
    log_level: str = _doc("Python logging level.", default="INFO")

    # Derived, never read from the environment; `finalize` fills it.
    link_secret: bytes = field(default=b"", repr=False, metadata={"derived": True})

    def resolved(self) -> Settings:
        """Fill defaults that depend on other settings and make sure the instance secret exists."""
        data = Path(self.data_dir)
        secret = self.secret or _load_or_create_secret(data / "secret.key")
        return dataclasses.replace(
            self,
            public_url=(self.public_url or f"http://{self.host}:{self.port}").rstrip("/"),
            database_url=self.database_url or f"sqlite+aiosqlite:///{data / 'claimcam.db'}",
            storage_dir=self.storage_dir or str(data / "objects"),
            recordings_dir=self.recordings_dir or str(data / "recordings"),
            pending_uploads_dir=self.pending_uploads_dir or str(data / "pending-uploads"),
            secret=secret,
            jwt_secret=self.jwt_secret or _derive(secret, "staff-jwt"),
            jwt_public_key=_read_pem(self.jwt_public_key),
            link_secret=_derive(secret, "invite-links").encode(),
        )

    def check(self) -> None:
        if self.email_delivery not in ("outbox", "smtp"):
            raise SettingsError("email_delivery must be 'outbox' or 'smtp'")
        if self.sms_delivery not in ("outbox", "gateway"):
            raise SettingsError("sms_delivery must be 'outbox' or 'gateway'")
        if self.sms_delivery == "gateway" and not self.sms_gateway_url:
            raise SettingsError("sms_delivery 'gateway' needs sms_gateway_url")
        if self.media_relay not in ("passthrough", "naive"):
            raise SettingsError("media_relay must be 'passthrough' or 'naive'")
        if not 0 < self.port < 65536:
            raise SettingsError("port must be 1..65535")
        if self.delivery_max_attempts < 1:
            raise SettingsError("delivery_max_attempts must be at least 1")
        if self.reconnect_grace_s < 0:
            raise SettingsError("reconnect_grace_s must be 0 or more")
        if self.socket_ping_interval_s <= 0 or self.socket_ping_timeout_s <= 0:
            raise SettingsError("socket_ping_interval_s and socket_ping_timeout_s must be more than 0")
        if not self.upload_retry_s > 0:
            raise SettingsError("upload_retry_s must be above 0")
        self._check_object_store()
        try:
            self.ice()
        except ValueError as e:
            raise SettingsError(f"ICE/TURN settings: {e}") from None

    def _check_object_store(self) -> None:
        if self.object_store not in ("local", "s3"):
            raise SettingsError("object_store must be 'local' or 's3'")
        if not 1 <= self.presign_expiry_s <= 604_800:
            raise SettingsError("presign_expiry_s must be 1..604800 (S3 presigned URLs live at most 7 days)")
        if self.object_store != "s3":
            return
        missing = [n for n in ("s3_endpoint", "s3_access_key", "s3_secret_key") if not getattr(self, n)]
        if missing:
            raise SettingsError(f"object_store 's3' needs {', '.join(missing)}")
        if not _BUCKET.fullmatch(self.s3_bucket) or ".." in self.s3_bucket:
            raise SettingsError(f"s3_bucket {self.s3_bucket!r} is not a valid bucket name")
        try:
            parse_endpoint(self.s3_endpoint, self.s3_secure)
        except ValueError as e:
            raise SettingsError(str(e)) from None

    def ice(self) -> IceSettings:
        """The ICE settings of the media plane and of the /ice-servers endpoints."""
        from media.ice import IceSettings  # here, so that importing the settings does not import aiortc

        return IceSettings(
            host_addresses=_csv(self.ice_host_addresses),
            public_address=self.ice_public_address.strip(),
            turn_urls=_csv(self.turn_urls),
            turn_secret=self.turn_secret,
            turn_ttl_s=self.turn_ttl_s,
        )


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _derive(secret: str, purpose: str) -> str:
    # Separate keys per purpose, so a leaked JWT key does not forge links and vice versa.
    return hashlib.sha256(f"{purpose}:{secret}".encode()).hexdigest()


def _load_or_create_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value


def _read_pem(value: str) -> str:
    if not value or value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text()


def setting_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in fields(Settings) if not f.metadata.get("derived")]


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except ValueError:
        raise SettingsError(f"setting {name}: {raw!r} is not a valid {kind}") from None


def load_settings(
    env: Mapping[str, str] | None = None, config_file: str | None = None, **overrides: Any
) -> Settings:
    """Precedence: explicit overrides > CLAIMCAM_* variables > TOML file > defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or env.get(f"{ENV_PREFIX}CONFIG", "")
    known = {f.name: f for f in setting_fields()}
    if path:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
        section = doc.get("claimcam", doc)
        for key, raw in section.items():
            if key not in known:
                raise SettingsError(f"unknown setting {key!r} in {path}")
            values[key] = _coerce(key, known[key].type, raw)
    for name, f in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, f.type, raw)
    for name, raw in overrides.items():
        if raw is not None:
            values[name] = _coerce(name, known[name].type, raw)
    settings = Settings(**values)
    settings.check()
    return settings
