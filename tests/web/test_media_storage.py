"""Captures filed through the app's filer and served by the API: presigned redirects on S3 (a real
moto server), streamed from the local store by default; the object-store settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from yarl import URL

from recorder.filing import CaptureFiler
from rooms.models import MediaItem, MediaKind
from tests.conftest import MakeApi
from tests.support.api_tools import JPEG, THUMB, open_invite
from tests.support.s3_servers import S3Server
from tests.support.world import Api
from web.keys import filer_key
from web.settings import Settings, SettingsError, load_settings


def s3_settings(server: S3Server, bucket: str, **more: Any) -> dict[str, Any]:
    return {
        "object_store": "s3", "s3_endpoint": server.endpoint, "s3_bucket": bucket,
        "s3_access_key": server.access_key, "s3_secret_key": server.secret_key, **more,
    }


async def capture(api: Api) -> MediaItem:
    invite = await open_invite(api)
    filer: CaptureFiler = api.client.app[filer_key]
    return await filer.file(invite["id"], MediaKind.PICTURE, JPEG, "image/jpeg", "jpg", "inspector",
                            "Ines Inspector", width=640, height=480, thumbnail=THUMB)


async def get_unfollowed(api: Api, path: str, user: str) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {api.token(user)}"}
    async with api.client.get(path, headers=headers, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.read()


async def fetch(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.get(URL(url, encoded=True)) as resp:
        return resp.status, await resp.read(), resp.content_type


async def test_content_on_s3_redirects_to_a_presigned_url_that_serves_the_bytes(
    make_api: MakeApi, moto_s3: S3Server
) -> None:
    bucket = moto_s3.new_bucket_name()
    api = await make_api(**s3_settings(moto_s3, bucket, presign_expiry_s=120))
    with moto_s3.client() as client:
        assert client.bucket_exists(bucket)  # created at start-up
    item = await capture(api)
    status, location, _ = await get_unfollowed(api, f"/api/v1/media/{item.id}/content", "inspector")
    assert status == 302
    assert location.startswith(f"{moto_s3.endpoint}/{bucket}/{item.object_key}?")
    assert dict(parse_qsl(urlsplit(location).query))["X-Amz-Expires"] == "120"
    assert await fetch(location) == (200, JPEG, "image/jpeg")
    status, location, _ = await get_unfollowed(api, f"/api/v1/media/{item.id}/thumbnail", "inspector")
    assert status == 302 and await fetch(location) == (200, THUMB, "image/jpeg")


async def test_content_on_s3_is_refused_to_a_user_without_access(make_api: MakeApi, moto_s3: S3Server) -> None:
    api = await make_api(**s3_settings(moto_s3, moto_s3.new_bucket_name()))
    item = await capture(api)
    status, location, _ = await get_unfollowed(api, f"/api/v1/media/{item.id}/content", "outsider")
    assert (status, location) == (404, "")


async def test_ready_checks_the_s3_bucket(make_api: MakeApi, moto_s3: S3Server) -> None:
    api = await make_api(**s3_settings(moto_s3, moto_s3.new_bucket_name()))
    status, body = await api.call("GET", "/readyz")
    assert (status, body["checks"]["object_store"]) == (200, True)


async def test_filed_capture_is_listed_and_streamed_from_the_local_store(api: Api) -> None:
    item = await capture(api)
    status, listing = await api.call("GET", f"/api/v1/invites/{item.invite_id}/media", user="inspector")
    assert status == 200
    [listed] = listing["items"]
    assert (listed["id"], listed["sha256"], listed["filing"]) == (item.id, item.sha256, "task_multimedia")
    status, location, body = await get_unfollowed(api, listed["content_url"], "inspector")
    assert (status, location, body) == (200, "", JPEG)


def test_object_store_defaults_to_the_local_folder() -> None:
    s = load_settings({})
    assert (s.object_store, s.s3_bucket, s.s3_secure, s.presign_expiry_s) == ("local", "claimcam", True, 300)


def test_s3_settings_come_from_the_environment_and_hide_the_secret() -> None:
    s = load_settings({
        "CLAIMCAM_OBJECT_STORE": "s3", "CLAIMCAM_S3_ENDPOINT": "minio.internal:9000",
        "CLAIMCAM_S3_ACCESS_KEY": "ak", "CLAIMCAM_S3_SECRET_KEY": "very-secret", "CLAIMCAM_S3_SECURE": "false",
        "CLAIMCAM_S3_REGION": "eu-north-1", "CLAIMCAM_PRESIGN_EXPIRY_S": "60",
    })
    assert (s.object_store, s.s3_endpoint, s.s3_secure, s.s3_region, s.presign_expiry_s) == (
        "s3", "minio.internal:9000", False, "eu-north-1", 60
    )
    assert "very-secret" not in repr(s)


S3_OK: dict[str, Any] = {
    "object_store": "s3", "s3_endpoint": "127.0.0.1:9000", "s3_access_key": "ak", "s3_secret_key": "sk",
}


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"object_store": "gcs"}, "object_store"),
        ({"s3_endpoint": ""}, "s3_endpoint"),
        ({"s3_access_key": ""}, "s3_access_key"),
        ({"s3_secret_key": ""}, "s3_secret_key"),
        ({"s3_endpoint": "https://s3.amazonaws.com/my-bucket"}, "endpoint"),
        ({"s3_endpoint": "127.0.0.1:port"}, "port"),
        ({"s3_bucket": "Claims_Bucket"}, "s3_bucket"),
        ({"s3_bucket": "ab"}, "s3_bucket"),
        ({"presign_expiry_s": 0}, "presign_expiry_s"),
        ({"presign_expiry_s": 604_801}, "presign_expiry_s"),
    ],
)
def test_incomplete_or_malformed_object_store_settings_are_refused(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        Settings(**{**S3_OK, **changes}).check()


def test_complete_s3_settings_pass_the_check() -> None:
    Settings(**S3_OK).check()
    assert Settings(**S3_OK).object_store == "s3"
