"""Captures the object store did not take, kept on local disk until it answers again.

Each capture waiting for the store is one folder `{pending_uploads_dir}/{media_id}/`:

    lock         an flock, held by whoever works on the entry (the filer writing it, an uploader)
    content      the picture or video as filed (a hard link to a finished recording when it can be)
    thumbnail    the picture's thumbnail, when it has one
    entry.json   for each file: the object key, content type and metadata it is stored with

An entry is written under a temporary name `.tmp-{media_id}`, fsynced, and renamed into place whole,
so nobody ever sees one half-written, and a capture acknowledged as pending survives a crash.
Processes of one host may share the folder: the flock makes sure only one of them uploads an entry.
An entry that cannot be uploaded (unreadable, damaged, its media item gone) is moved to
`unrecoverable/` and logged, never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.object_store import Content, check_key, check_metadata

log = logging.getLogger(__name__)

ENTRY = "entry.json"
LOCK = "lock"
FILES = ("content", "thumbnail")  # the file names of a capture's objects, in order
TEMP_PREFIX = ".tmp-"
UNRECOVERABLE = "unrecoverable"
FORMAT_VERSION = 1
# A temporary entry without even its lock file is left by a crash right after mkdir; after this long
# nobody can be about to lock it.
ABANDONED_TEMP_S = 3600.0
_NAME = re.compile(r"[0-9a-f]{32}")  # media ids (uuid4 hex): nothing else in the folder is an entry


@dataclass(frozen=True, slots=True)
class SpooledObject:
    """One object of a capture as the filer has it: the bytes or file stored under `key`."""

    key: str
    data: Content
    content_type: str
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class EntryObject:
    """One object of a spooled capture: its file in the entry's folder and where it goes in the store."""

    path: Path
    key: str
    content_type: str
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    media_id: str
    invite_id: str
    objects: tuple[EntryObject, ...]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(dest: Path, data: Content) -> None:
    """Put a capture's bytes at `dest`, durably; a file is linked rather than copied when the disk allows."""
    if isinstance(data, bytes):
        dest.write_bytes(data)
    else:
        try:
            os.link(data, dest)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(data, dest)
    _fsync_file(dest)


def _parse(directory: Path, doc: Any) -> Entry:
    """entry.json, checked: a file in the folder could have been edited or damaged since it was written."""
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError("not an entry of this format")
    media_id, invite_id, objects = doc.get("media_id"), doc.get("invite_id"), doc.get("objects")
    if media_id != directory.name or not isinstance(invite_id, str) or not isinstance(objects, list):
        raise ValueError("the entry names no media item, invite or objects")
    parsed: list[EntryObject] = []
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("file") not in FILES:
            raise ValueError("the entry names an unknown file")
        key, content_type, metadata = obj.get("key"), obj.get("content_type"), obj.get("metadata")
        if not isinstance(key, str) or not isinstance(content_type, str) or not isinstance(metadata, dict):
            raise ValueError("the entry has an object without key, content type or metadata")
        if not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("the entry has metadata that is not text")
        parsed.append(EntryObject(directory / obj["file"], check_key(key), content_type, check_metadata(metadata)))
    if not parsed:
        raise ValueError("the entry has no objects")
    return Entry(media_id, invite_id, tuple(parsed))


def _remove_folder(directory: Path) -> None:
    # entry.json first: a folder without it is known to be finished with, whatever a crash leaves of the rest.
    (directory / ENTRY).unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)


def _lock(path: Path, *, create: bool) -> int | None:
    """An fd holding an exclusive flock on `path`; None when another holder has it or the file is gone."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class HeldEntry:
    """An entry whose lock this process holds: nobody else uploads, removes or moves it meanwhile."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @property
    def media_id(self) -> str:
        return self.directory.name

    def read(self) -> Entry:
        """Raises ValueError (or OSError) for an entry that cannot be read."""
        return _parse(self.directory, json.loads((self.directory / ENTRY).read_text()))

    def remove(self) -> None:
        _remove_folder(self.directory)

    def move_aside(self) -> Path:
        aside = self.directory.parent / UNRECOVERABLE
        aside.mkdir(exist_ok=True)
        target = aside / self.directory.name
        os.replace(self.directory, target)
        return target

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class UploadSpool:
    """The folder of captures waiting for the object store (see the module's description)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._added = asyncio.Event()

    async def add(self, media_id: str, invite_id: str, objects: list[SpooledObject]) -> HeldEntry:
        """Keep a capture's objects on disk; returns the new entry, locked until the caller releases it.

        The caller files the media item while it holds the lock, so an uploader never takes an entry
        whose item is not recorded yet; it calls `notify` once it has released the lock.
        """
        if not _NAME.fullmatch(media_id) or not 0 < len(objects) <= len(FILES):
            raise ValueError(f"cannot spool {len(objects)} objects as media item {media_id!r}")
        return await asyncio.to_thread(self._write, media_id, invite_id, objects)

    def _write(self, media_id: str, invite_id: str, objects: list[SpooledObject]) -> HeldEntry:
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f"{TEMP_PREFIX}{media_id}"
        temp.mkdir()
        # Locked before it takes its name, so whoever opens `lock` finds it held, never free for a moment.
        fd = _lock(temp / f"{LOCK}.new", create=True)
        assert fd is not None  # a file this call just created exclusively
        try:
            os.rename(temp / f"{LOCK}.new", temp / LOCK)
            described = []
            for name, obj in zip(FILES, objects, strict=False):
                _place(temp / name, obj.data)
                described.append(
                    {"file": name, "key": obj.key, "content_type": obj.content_type, "metadata": obj.metadata}
                )
            doc = {"version": FORMAT_VERSION, "media_id": media_id, "invite_id": invite_id, "objects": described}
            (temp / ENTRY).write_text(json.dumps(doc, indent=1))
            _fsync_file(temp / ENTRY)
            _fsync_dir(temp)
            final = self.directory / media_id
            os.rename(temp, final)  # the lock is on the file, not the name: still held
            _fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            os.close(fd)
            raise
        return HeldEntry(final, fd)

    def notify(self) -> None:
        """A new entry is ready for an uploader."""
        self._added.set()

    async def wait(self, timeout_s: float) -> None:
        """Until an entry is added or `timeout_s` has passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._added.wait(), timeout_s)
        self._added.clear()

    def names(self) -> list[str]:
        """The entries in the folder, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            if _NAME.fullmatch(path.name) and path.is_dir():
                with contextlib.suppress(FileNotFoundError):  # uploaded by another process meanwhile
                    found.append((path.stat().st_mtime, path.name))
        return [name for _, name in sorted(found)]

    def claim(self, name: str) -> HeldEntry | None:
        """Lock an entry; None when another process holds it or it is gone."""
        directory = self.directory / name
        fd = _lock(directory / LOCK, create=False)
        if fd is None:
            return None
        if not (directory / ENTRY).exists():
            # Uploaded and removed by another process after this one listed it, or a removal a crash cut short.
            _remove_folder(directory)
            os.close(fd)
            return None
        return HeldEntry(directory, fd)

    def clear_temporaries(self) -> None:
        """Remove entries a crash left half-written: never acknowledged, so nothing of the case is lost."""
        if not self.directory.is_dir():
            return
        for temp in self.directory.glob(f"{TEMP_PREFIX}*"):
            fd = _lock(temp / LOCK, create=False)
            if fd is None:
                with contextlib.suppress(FileNotFoundError):
                    abandoned = not (temp / LOCK).exists() and time.time() - temp.stat().st_mtime > ABANDONED_TEMP_S
                    if abandoned:
                        shutil.rmtree(temp, ignore_errors=True)
                continue
            try:
                log.warning("removed the half-written pending upload %s", temp.name)
                shutil.rmtree(temp, ignore_errors=True)
            finally:
                os.close(fd)
