"""Object storage behind one interface. The local folder is the default; S3 joins it later."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")


class BadKey(ValueError):
    pass


class ObjectMissing(LookupError):
    pass


def check_key(key: str) -> str:
    """Keys are relative paths of plain segments; '..', absolute paths and odd bytes are refused."""
    if len(key) > 500 or not _KEY.match(key) or any(seg in (".", "..") for seg in key.split("/")):
        raise BadKey(f"invalid object key {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class Location:
    """Where a browser gets an object: a short-lived URL, or a local file the server streams."""

    url: str | None = None
    path: Path | None = None
    content_type: str = "application/octet-stream"


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def locate(self, key: str, expires_s: int) -> Location: ...

    async def ready(self) -> bool: ...


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self._root / check_key(key)).resolve()
        if self._root not in path.parents:
            raise BadKey(f"invalid object key {key!r}")
        return path

    def _write(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see a half-written object
        meta = {"content_type": content_type, "metadata": metadata}
        path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))

    async def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        await asyncio.to_thread(self._write, key, data, content_type, metadata)

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

    async def ready(self) -> bool:
        def probe() -> bool:
            self._root.mkdir(parents=True, exist_ok=True)
            return os.access(self._root, os.W_OK)

        return await asyncio.to_thread(probe)
