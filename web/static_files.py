"""The pages' static files, read into memory once when the app starts and served from there.

There are a dozen small files (about 250 kB with the Socket.IO client). Serving them from memory
means no file is opened per request: aiohttp's file responses open the file in a worker thread,
and a request cancelled while that thread ran (a page left mid-load, a server shutting down) left
the file open. A path is only ever a key of the table, so nothing outside the folder can be named.
Edits to these files take effect when the server restarts.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str
    cache_control: str


def _content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _entry(path: Path, cache_control: str) -> StaticFile:
    body = path.read_bytes()
    return StaticFile(body, _content_type(path), f'"{hashlib.sha256(body).hexdigest()[:20]}"', cache_control)


class StaticFiles:
    def __init__(self, folder: Path, extra: dict[str, Path]) -> None:
        """`extra` maps more paths under /static/ to files elsewhere (the vendored client), if they exist."""
        # Revalidated on every load (a cheap 304 by ETag), so a deploy is seen at once.
        self.files = {
            path.relative_to(folder).as_posix(): _entry(path, "no-cache")
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink()
        }
        for name, path in extra.items():
            if path.is_file():
                self.files[name] = _entry(path, "public, max-age=3600")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.match_info["path"])
        if found is None:
            raise web.HTTPNotFound()
        headers = {"ETag": found.etag, "Cache-Control": found.cache_control}
        if found.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=found.body, headers={**headers, "Content-Type": found.content_type})
