"""Signed links to pictures and videos: what a page opens in a new window, an <img> or a <video>,
where no Authorization header can go. They name one item and one part, and expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from recorder.filing import CaptureFiler
from rooms.models import MediaItem, MediaKind
from tests.conftest import MakeApi
from tests.support.api_tools import JPEG, THUMB, assert_error, open_invite
from tests.support.s3_servers import S3Server
from tests.support.world import Api
from tests.web.test_media_storage import fetch, s3_settings
from web.keys import filer_key


async def capture(api: Api, *, thumbnail: bool = True) -> MediaItem:
    invite = await open_invite(api)
    filer: CaptureFiler = api.client.app[filer_key]
    return await filer.file(invite["id"], MediaKind.PICTURE, JPEG, "image/jpeg", "jpg", "inspector",
                            "Ines Inspector", width=640, height=480, thumbnail=THUMB if thumbnail else None)


async def links(api: Api, item: MediaItem, user: str = "viewer") -> dict[str, str]:
    status, body = await api.call("GET", f"/api/v1/media/{item.id}/links", user=user)
    assert status == 200, body
    return dict(body)


async def get(api: Api, url: str) -> tuple[int, dict[str, str], bytes]:
    """Without any Authorization header: the link alone must do."""
    async with api.client.get(url, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


async def test_signed_links_open_the_content_and_thumbnail_without_a_token(api: Api) -> None:
    item = await capture(api)
    body = await links(api, item)
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=290) < expires - datetime.now(UTC) <= timedelta(seconds=300)  # presign_expiry_s
    status, headers, content = await get(api, body["content_url"])
    assert (status, content, headers["Content-Type"]) == (200, JPEG, "image/jpeg")
    assert headers["Referrer-Policy"] == "no-referrer"
    status, _, thumb = await get(api, body["thumbnail_url"])
    assert (status, thumb) == (200, THUMB)


async def test_an_item_without_thumbnail_has_no_thumbnail_link(api: Api) -> None:
    body = await links(api, await capture(api, thumbnail=False))
    assert body["thumbnail_url"] is None


async def test_a_link_works_for_its_own_item_and_part_only(api: Api) -> None:
    first, second = await capture(api), await capture(api)
    one = await links(api, first)
    # The content link's signature does not open the thumbnail, nor another item.
    thumb_with_content_sig = with_query(one["thumbnail_url"], signature=dict(parse_qsl(urlsplit(
        one["content_url"]).query))["signature"])
    other_item = one["content_url"].replace(first.id, second.id)
    for url in (thumb_with_content_sig, other_item):
        status, _, body = await get(api, url)
        assert status == 401, url
        assert b"invalid_token" in body and JPEG not in body


async def test_altered_or_incomplete_links_are_refused(api: Api) -> None:
    item = await capture(api)
    url = (await links(api, item))["content_url"]
    signature = dict(parse_qsl(urlsplit(url).query))["signature"]
    later = str(int(datetime.now(UTC).timestamp()) + 86_400)
    for bad in (
        with_query(url, expires=later),  # a longer life is not signed
        with_query(url, signature="0" * 64),
        with_query(url, signature=signature.upper()),
        f"{urlsplit(url).path}?signature={signature}",  # no expiry
        f"{urlsplit(url).path}?expires={later}",  # no signature
    ):
        status, _, body = await get(api, bad)
        assert status == 401 and JPEG not in body, bad
    status, _, _ = await get(api, with_query(url, expires="soon"))
    assert status == 422


async def test_an_expired_link_is_refused(make_api: MakeApi) -> None:
    now = [datetime(2026, 11, 21, 12, 0, tzinfo=UTC)]
    api = await make_api(clock=lambda: now[0], presign_expiry_s=60)
    item = await capture(api)
    url = (await links(api, item))["content_url"]
    now[0] += timedelta(seconds=59)
    assert (await get(api, url))[0] == 200
    now[0] += timedelta(seconds=2)
    status, _, body = await get(api, url)
    assert status == 401 and b"token_expired" in body


async def test_links_are_given_only_to_those_who_may_see_the_item(api: Api) -> None:
    item = await capture(api)
    status, body = await api.call("GET", f"/api/v1/media/{item.id}/links", user="outsider")
    assert_error(status, body, 404, "not_found")
    status, body = await api.call("GET", f"/api/v1/media/{item.id}/links")
    assert_error(status, body, 401, "missing_token")


async def test_without_a_link_the_bearer_token_is_still_required(api: Api) -> None:
    item = await capture(api)
    status, _, body = await get(api, f"/api/v1/media/{item.id}/content")
    assert status == 401 and b"missing_token" in body


async def test_a_signed_link_on_s3_redirects_to_a_presigned_url(make_api: MakeApi, moto_s3: S3Server) -> None:
    bucket = moto_s3.new_bucket_name()
    api = await make_api(**s3_settings(moto_s3, bucket))
    item = await capture(api)
    status, headers, _ = await get(api, (await links(api, item))["content_url"])
    assert status == 302 and headers["Location"].startswith(f"{moto_s3.endpoint}/{bucket}/")
    assert await fetch(headers["Location"]) == (200, JPEG, "image/jpeg")
