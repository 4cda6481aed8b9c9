"""The object stores behave alike: the local folder, S3 on moto, and S3 on nanio (which checks signatures)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from minio.error import S3Error
from yarl import URL

from recorder.object_store import (
    BadKey,
    LocalObjectStore,
    ObjectMissing,
    ObjectStore,
    S3ObjectStore,
    StoreUnavailable,
    parse_endpoint,
)
from tests.support.ports import free_port
from tests.support.s3_servers import S3Server

KEY = "cases/claim:42/invites/inv-1/pictures/m1.jpg"
DATA = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
META = {
    "case": "claim:42",
    "task": "",
    "invite": "inv-1",
    "captured-at": "2026-11-21T12:00:00+00:00",
    "sha256": "ab" * 32,
}


@dataclass
class Backend:
    """A store under test plus a way to look behind it, as a consumer of the storage would."""

    name: str
    store: ObjectStore
    root: Path | None = None
    server: S3Server | None = None
    bucket: str = ""

    async def stat(self, key: str) -> tuple[str, dict[str, str]]:
        """Content type and user metadata as kept by the storage itself."""
        if self.root is not None:
            meta = json.loads((self.root / (key + ".meta.json")).read_text())
            return str(meta["content_type"]), dict(meta["metadata"])
        assert self.server is not None

        def stat() -> tuple[str, dict[str, str]]:
            assert self.server is not None
            with self.server.client() as client:
                st = client.stat_object(self.bucket, key)
            prefix = "x-amz-meta-"
            headers = st.metadata or {}
            user = {k.lower()[len(prefix):]: v for k, v in headers.items() if k.lower().startswith(prefix)}
            return str(st.content_type), user

        return await asyncio.to_thread(stat)

    async def keys(self) -> list[str]:
        """Every object key stored, whatever the store."""
        if self.root is not None:
            if not self.root.exists():
                return []
            return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())
        assert self.server is not None

        def listing() -> list[str]:
            assert self.server is not None
            with self.server.client() as client:
                return sorted(str(o.object_name) for o in client.list_objects(self.bucket, recursive=True))

        return await asyncio.to_thread(listing)


async def s3_backend(name: str, server: S3Server) -> Backend:
    bucket = server.new_bucket_name()
    store = S3ObjectStore(server.endpoint, bucket, server.access_key, server.secret_key)
    await store.ensure_bucket()
    return Backend(name, store, server=server, bucket=bucket)


@pytest.fixture(params=["local", "moto", "nanio"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        root = tmp_path / "objects"
        yield Backend("local", LocalObjectStore(root), root=root)
        return
    b = await s3_backend(request.param, request.getfixturevalue(f"{request.param}_s3"))
    yield b
    assert isinstance(b.store, S3ObjectStore)
    b.store.close()


@pytest.fixture
async def nanio_backend(nanio_s3: S3Server) -> AsyncIterator[Backend]:
    b = await s3_backend("nanio", nanio_s3)
    yield b
    assert isinstance(b.store, S3ObjectStore)
    b.store.close()


async def fetch(url: str) -> tuple[int, bytes, str]:
    """GET a URL as a browser would: verbatim, without re-encoding the signed query."""
    async with aiohttp.ClientSession() as session, session.get(URL(url, encoded=True)) as resp:
        return resp.status, await resp.read(), resp.content_type


async def test_bytes_content_type_and_metadata_round_trip(backend: Backend) -> None:
    await backend.store.put(KEY, DATA, "image/jpeg", META)
    assert await backend.store.get(KEY) == DATA
    assert await backend.stat(KEY) == ("image/jpeg", META)


async def test_a_file_is_streamed_from_disk_with_its_metadata(backend: Backend, tmp_path: Path) -> None:
    big = bytes(range(256)) * 40_000  # ~10 MB: several S3 multipart parts' worth of bytes
    source = tmp_path / "recording.webm"
    source.write_bytes(big)
    await backend.store.put(KEY, source, "video/webm", META)
    assert await backend.store.get(KEY) == big
    assert await backend.stat(KEY) == ("video/webm", META)
    assert source.read_bytes() == big  # the source is left as it was


async def test_put_replaces_an_existing_object(backend: Backend) -> None:
    await backend.store.put(KEY, b"old", "text/plain", {"sha256": "1"})
    await backend.store.put(KEY, DATA, "image/jpeg", META)
    assert (await backend.store.get(KEY), await backend.stat(KEY)) == (DATA, ("image/jpeg", META))


async def test_missing_key_raises_object_missing(backend: Backend) -> None:
    with pytest.raises(ObjectMissing):
        await backend.store.get("cases/none/manifest.json")
    with pytest.raises(ObjectMissing):
        await backend.store.locate("cases/none/manifest.json", 60)


@pytest.mark.parametrize(
    "key",
    ["../x", "/abs", "a//b", "a/../b", "a/./b", "a\x00b", "a\nb", "a\n", "a" * 600, "", "a/", "sp ace", ".hidden"],
    ids=["dotdot", "absolute", "empty-segment", "inner-dotdot", "dot", "nul", "newline", "trailing-newline",
         "600-chars", "empty", "trailing-slash", "space", "leading-dot"],
)
async def test_bad_keys_are_refused_and_nothing_is_written(backend: Backend, key: str) -> None:
    with pytest.raises(BadKey):
        await backend.store.put(key, DATA, "image/jpeg", META)
    with pytest.raises(BadKey):
        await backend.store.get(key)
    with pytest.raises(BadKey):
        await backend.store.locate(key, 60)
    with pytest.raises(BadKey):
        await backend.store.delete(key)
    assert await backend.keys() == []


@pytest.mark.parametrize(
    "metadata", [{"Case": "x"}, {"case": "Åland"}, {"case": "a\r\nX-Injected: 1"}, {"ca se": "x"}],
    ids=["upper-case-name", "non-ascii-value", "header-injection", "space-in-name"],
)
async def test_metadata_that_is_no_valid_header_is_refused(backend: Backend, metadata: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="metadata"):
        await backend.store.put(KEY, DATA, "image/jpeg", metadata)
    assert await backend.keys() == []


async def test_location_gives_the_bytes_and_the_content_type(backend: Backend) -> None:
    await backend.store.put(KEY, DATA, "image/jpeg", META)
    location = await backend.store.locate(KEY, 60)
    assert location.content_type == "image/jpeg"
    if backend.root is not None:  # the local store: a file this server streams
        assert location.url is None and location.path is not None
        assert location.path.read_bytes() == DATA
    else:  # S3: a presigned URL the browser fetches from the S3 server itself
        assert location.url is not None and location.path is None
        assert location.url.startswith(f"http://127.0.0.1:{backend.server.port if backend.server else 0}/")
        assert "X-Amz-Signature=" in location.url
        assert await fetch(location.url) == (200, DATA, "image/jpeg")


async def test_delete_removes_the_object_and_tolerates_a_missing_one(backend: Backend) -> None:
    await backend.store.put(KEY, DATA, "image/jpeg", META)
    await backend.store.delete(KEY)
    await backend.store.delete(KEY)
    with pytest.raises(ObjectMissing):
        await backend.store.get(KEY)
    assert await backend.keys() == []


async def test_ready_when_the_storage_is_reachable(backend: Backend) -> None:
    assert await backend.store.ready() is True


async def test_ensure_bucket_creates_it_once_and_is_idempotent(moto_s3: S3Server) -> None:
    bucket = moto_s3.new_bucket_name()
    store = S3ObjectStore(moto_s3.endpoint, bucket, moto_s3.access_key, moto_s3.secret_key)
    try:
        assert await store.ready() is False  # the bucket does not exist yet
        await store.ensure_bucket()
        await store.ensure_bucket()
        assert await store.ready() is True
    finally:
        store.close()
    with moto_s3.client() as client:
        assert client.bucket_exists(bucket)


async def test_unreachable_server_is_not_ready_and_answers_quickly() -> None:
    store = S3ObjectStore(f"http://127.0.0.1:{free_port()}", "claimcam", "ak", "sk")
    try:
        started = asyncio.get_running_loop().time()
        assert await store.ready() is False
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        store.close()


async def test_unreachable_server_is_unavailable_for_a_put() -> None:
    store = S3ObjectStore(f"http://127.0.0.1:{free_port()}", "claimcam", "ak", "sk", region="us-east-1")
    try:
        with pytest.raises(StoreUnavailable):
            await store.put(KEY, DATA, "image/jpeg", META)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (503, "application/xml", "<Error><Code>SlowDown</Code><Message>busy</Message></Error>"),
        (507, "application/xml", "<Error><Code>InternalError</Code><Message>full</Message></Error>"),
        (502, "text/html", "<html><body>Bad gateway</body></html>"),  # a proxy in front of the store
    ],
)
async def test_server_failing_with_5xx_is_unavailable(status: int, content_type: str, body: str) -> None:
    async def failing(_: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", failing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    store = S3ObjectStore(f"http://127.0.0.1:{server.port}", "claimcam", "ak", "sk", region="us-east-1")
    try:
        with pytest.raises(StoreUnavailable):
            await store.put(KEY, DATA, "image/jpeg", META)
    finally:
        store.close()
        await server.close()


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_presigned_url_with_a_tampered_signature_is_refused(nanio_backend: Backend) -> None:
    await nanio_backend.store.put(KEY, DATA, "image/jpeg", META)
    url = (await nanio_backend.store.locate(KEY, 60)).url
    assert url is not None
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    status, body, _ = await fetch(_with_query(url, **{"X-Amz-Signature": forged}))
    assert status == 403 and DATA not in body
    assert (await fetch(url))[0] == 200  # the genuine URL still works


async def test_presigned_url_with_a_longer_lifetime_forged_in_is_refused(nanio_backend: Backend) -> None:
    await nanio_backend.store.put(KEY, DATA, "image/jpeg", META)
    url = (await nanio_backend.store.locate(KEY, 60)).url
    assert url is not None
    status, body, _ = await fetch(_with_query(url, **{"X-Amz-Expires": "604800"}))
    assert status == 403 and DATA not in body


async def test_expired_presigned_url_is_refused(nanio_backend: Backend) -> None:
    await nanio_backend.store.put(KEY, DATA, "image/jpeg", META)
    url = (await nanio_backend.store.locate(KEY, 1)).url
    assert url is not None
    await asyncio.sleep(2.0)
    status, body, _ = await fetch(url)
    assert 400 <= status < 500 and DATA not in body


async def test_wrong_secret_key_is_refused_and_writes_nothing(nanio_s3: S3Server, nanio_backend: Backend) -> None:
    intruder = S3ObjectStore(nanio_s3.endpoint, nanio_backend.bucket, nanio_s3.access_key, "not-the-secret-key")
    try:
        with pytest.raises(S3Error) as refused:  # a refusal, not an outage: such a capture is not kept for later
            await intruder.put(KEY, DATA, "image/jpeg", META)
        assert refused.value.code == "SignatureDoesNotMatch"
        assert await intruder.ready() is False
        with pytest.raises(S3Error):
            await intruder.ensure_bucket()
    finally:
        intruder.close()
    assert await nanio_backend.keys() == []


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("127.0.0.1:9000", False, ("127.0.0.1:9000", False)),
        ("minio.internal:9000", True, ("minio.internal:9000", True)),
        ("http://127.0.0.1:9000", True, ("127.0.0.1:9000", False)),
        ("https://s3.eu-north-1.amazonaws.com", False, ("s3.eu-north-1.amazonaws.com", True)),
        ("https://s3.amazonaws.com/", False, ("s3.amazonaws.com", True)),
        ("[::1]:9000", False, ("[::1]:9000", False)),
    ],
)
def test_endpoint_forms_decide_host_and_tls(endpoint: str, secure: bool, expected: tuple[str, bool]) -> None:
    parsed = parse_endpoint(endpoint, secure)
    assert (parsed.netloc, parsed.secure) == expected


@pytest.mark.parametrize(
    "endpoint",
    ["", "ftp://host", "https://host/bucket", "host:99999", "host:port", "https://user:pw@host", "http://"],
)
def test_malformed_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        parse_endpoint(endpoint, True)
