"""Object storage behind one interface: a local folder (the default) or an S3 bucket (MinIO, AWS...)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

# ':' is allowed after a segment's first character because record ids may contain it (web.schemas.ID_PATTERN).
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*(/[A-Za-z0-9][A-Za-z0-9._:\-]*)*")
_META_NAME = re.compile(r"[a-z0-9][a-z0-9\-]{0,63}")
_META_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")


class BadKey(ValueError):
    pass


class ObjectMissing(LookupError):
    pass


class StoreUnavailable(Exception):
    """The store did not take an object because it is down or failing (refused or timed-out connection,
    a 5xx answer, a local disk error), not because the request was wrong: trying later can succeed."""


def check_key(key: str) -> str:
    """Keys are relative paths of plain segments; '..', absolute paths and odd bytes are refused."""
    if len(key) > 500 or not _KEY.fullmatch(key) or any(seg in (".", "..") for seg in key.split("/")):
        raise BadKey(f"invalid object key {key!r}")
    return key


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """User metadata travels as `x-amz-meta-{name}` HTTP headers: lower-case names, printable ASCII values."""
    for name, value in metadata.items():
        if not _META_NAME.fullmatch(name) or not _META_VALUE.fullmatch(value):
            raise ValueError(f"invalid object metadata {name!r}={value!r}")
    return metadata


@dataclass(frozen=True, slots=True)
class Location:
    """Where a browser gets an object: a short-lived URL, or a local file the server streams."""

    url: str | None = None
    path: Path | None = None
    content_type: str = "application/octet-stream"


# What an object is made from: bytes in memory, or a file streamed from disk (a recording can be
# hundreds of megabytes; it is never read into memory whole).
Content = bytes | Path


class ObjectStore(Protocol):
    async def put(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        """Store the object; StoreUnavailable when the store is down or failing, so trying later can work."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def locate(self, key: str, expires_s: int) -> Location: ...

    async def ready(self) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object if it exists; a missing key is not an error."""
        ...


def _check_source(data: Content) -> None:
    """A missing source file is the caller's mistake; found here, it is never taken for the store failing."""
    if isinstance(data, Path) and not data.is_file():
        raise FileNotFoundError(f"no file to store at {data}")


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self._root / check_key(key)).resolve()
        if self._root not in path.parents:
            raise BadKey(f"invalid object key {key!r}")
        return path

    def _write(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        if isinstance(data, Path):
            shutil.copyfile(data, tmp)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see a half-written object
        meta = {"content_type": content_type, "metadata": metadata}
        path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))

    async def put(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        self._path(key)
        check_metadata(metadata)
        _check_source(data)
        try:
            await asyncio.to_thread(self._write, key, data, content_type, metadata)
        except OSError as e:  # a full disk, a lost network mount
            raise StoreUnavailable(f"local object store: {e}") from e

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    async def locate(self, key: str, expires_s: int) -> Location:
        path = self._path(key)
        meta_path = path.with_name(path.name + ".meta.json")
        try:
            meta = json.loads(await asyncio.to_thread(meta_path.read_text))
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        if not path.is_file():
            raise ObjectMissing(key)
        return Location(path=path, content_type=str(meta.get("content_type", "application/octet-stream")))

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def remove() -> None:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".meta.json").unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def ready(self) -> bool:
        def probe() -> bool:
            self._root.mkdir(parents=True, exist_ok=True)
            return os.access(self._root, os.W_OK)

        return await asyncio.to_thread(probe)


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    netloc: str  # host[:port], the form the minio client takes
    secure: bool


def parse_endpoint(endpoint: str, secure: bool) -> S3Endpoint:
    """`host[:port]`, or `http://host[:port]` / `https://host[:port]`; a scheme decides TLS over `secure`."""
    text = endpoint.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"S3 endpoint {endpoint!r}: the scheme must be http or https")
        secure = parts.scheme == "https"
    else:
        parts = urlsplit("//" + text)
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"S3 endpoint {endpoint!r} must be host[:port], optionally with http:// or https://")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ValueError(f"S3 endpoint {endpoint!r} has an invalid port") from None
    return S3Endpoint(parts.netloc, secure)


def _missing(e: S3Error) -> bool:
    return e.code in ("NoSuchKey", "NoSuchObject")


def _outage(e: Exception) -> bool:
    """Whether an S3 call failed because the server is unreachable or failing, rather than refusing the request."""
    if isinstance(e, urllib3.exceptions.HTTPError | OSError):  # refused, reset, timed out, retries used up
        return True
    if isinstance(e, ServerError):
        return e.status_code >= 500
    if isinstance(e, S3Error):
        return e.response.status >= 500
    if isinstance(e, InvalidResponseError):  # e.g. a proxy's HTML error page in front of the store
        status: int = getattr(e, "_code", 0)  # minio keeps the status only in a private field
        return status >= 500
    return False


class S3ObjectStore:
    """Objects in one bucket over the S3 API (MinIO, AWS S3...), through the synchronous minio client
    run in worker threads. Content is handed out as presigned GET URLs, so bytes never pass through
    this server on the way to a browser."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        region: str = "",
        secure: bool = True,
    ) -> None:
        ep = parse_endpoint(endpoint, secure)
        self.bucket = bucket
        self._region = region or None
        # Own pools instead of minio's defaults: bounded time for an unreachable server, and TLS
        # verified against the system's trust store (so a private CA installed there works).
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=60.0),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        # Readiness answers within a couple of seconds and never retries.
        self._probe_http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=2.0), maxsize=2, cert_reqs="CERT_REQUIRED", retries=False
        )
        self._client = Minio(
            ep.netloc, access_key, secret_key, secure=ep.secure, region=self._region, http_client=self._http
        )
        self._probe = Minio(
            ep.netloc, access_key, secret_key, secure=ep.secure, region=self._region, http_client=self._probe_http
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (another node may be doing the same)."""

        def ensure() -> None:
            if self._client.bucket_exists(self.bucket):
                return
            try:
                self._client.make_bucket(self.bucket, location=self._region)
            except S3Error as e:
                if e.code != "BucketAlreadyOwnedByYou":
                    raise

        await asyncio.to_thread(ensure)

    async def put(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        """Raises StoreUnavailable when the server cannot be reached or fails (5xx); S3Error when it refuses."""
        check_key(key)
        headers = {f"x-amz-meta-{name}": value for name, value in check_metadata(metadata).items()}
        _check_source(data)
        try:
            await asyncio.to_thread(self._upload, key, data, content_type, headers)
        except Exception as e:
            if _outage(e):
                raise StoreUnavailable(f"S3 bucket {self.bucket!r}: {e}") from e
            raise

    def _upload(self, key: str, data: Content, content_type: str, headers: dict[str, str]) -> None:
        if isinstance(data, Path):
            # minio streams the file in multipart uploads; memory stays at one part.
            self._client.fput_object(
                self.bucket,
                key,
                str(data),
                content_type=content_type,
                metadata=headers,  # type: ignore[arg-type]  # minio's alias is narrower than what it accepts
            )
            return
        self._client.put_object(
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata=headers,  # type: ignore[arg-type]  # minio's alias is narrower than what it accepts
        )

    async def get(self, key: str) -> bytes:
        check_key(key)

        def fetch() -> bytes:
            resp = self._client.get_object(self.bucket, key)
            try:
                return bytes(resp.read())
            finally:
                resp.close()
                resp.release_conn()

        try:
            return await asyncio.to_thread(fetch)
        except S3Error as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise

    async def locate(self, key: str, expires_s: int) -> Location:
        check_key(key)

        def sign() -> Location:
            stat = self._client.stat_object(self.bucket, key)
            url = self._client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_s))
            return Location(url=url, content_type=stat.content_type or "application/octet-stream")

        try:
            return await asyncio.to_thread(sign)
        except S3Error as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise

    async def delete(self, key: str) -> None:
        check_key(key)
        await asyncio.to_thread(self._client.remove_object, self.bucket, key)

    async def ready(self) -> bool:
        try:
            return await asyncio.to_thread(self._probe.bucket_exists, self.bucket)
        except (MinioException, urllib3.exceptions.HTTPError, OSError):
            return False

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.clear()
        self._probe_http.clear()
