"""A recording's files on this node's disk, its final container, and recovery after a crash.

While a call is recorded, its packets go to a spool file `{recordings_dir}/{name}.mkv`, written
progressively (see recorder/recording.py), with a JSON sidecar `{name}.json` next to it: whose
invite, who started it, the codec, when. The recording's thread holds an advisory lock (flock) on
the spool file as long as it writes, so another process sharing the folder never takes a live
recording for a dead one.

At stop, or when a restarted server finds a sidecar whose spool nobody holds, the spool is made into
the file browsers play: WebM for VP8, MP4 for H.264, with the index at the front so a player can seek
before it has the whole file. Video is remuxed, never re-encoded; the two voices, kept apart in the
spool, are mixed into one audio track then (recorder/voice_mix.py). A spool that a crash cut short is read up to
its last whole cluster. A recording that cannot be made playable or filed is moved into
`{recordings_dir}/unrecoverable/` and logged, never deleted.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av

from recorder.filing import CaptureFiler
from recorder.voice_mix import Mixdown
from rooms.errors import NotFound, RoomsError
from rooms.models import MediaItem, MediaKind

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".mkv"
SIDECAR_SUFFIX = ".json"
UNRECOVERABLE = "unrecoverable"
VIDEO_FRAME_MS = 33  # the last video frame's length, which the mixed audio covers too


@dataclass(frozen=True, slots=True)
class FinalFormat:
    container: str  # FFmpeg muxer
    extension: str
    content_type: str
    options: dict[str, str]


# VP8 goes only in WebM, H.264 only in MP4 (browsers play neither the other way round). Both get their
# index at the front: Matroska's Cues moved before the clusters, MP4's moov before mdat.
FINAL_FORMATS = {
    "vp8": FinalFormat("webm", "webm", "video/webm", {"cues_to_front": "1"}),
    "h264": FinalFormat("mp4", "mp4", "video/mp4", {"movflags": "+faststart"}),
}


class RecordingDamaged(RoomsError):
    """A spool file that holds no playable video."""

    code = "recording_damaged"


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What a spool file is: written when the recording starts, read by recovery."""

    invite_id: str
    by_user_id: str
    by_name: str
    codec: str
    started_at: str  # ISO 8601

    def dumps(self) -> str:
        return json.dumps({"version": 1, **asdict(self)}, indent=1)

    @classmethod
    def loads(cls, text: str) -> Sidecar:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("the sidecar is not a JSON object")
        values: dict[str, str] = {}
        for name in ("invite_id", "by_user_id", "by_name", "codec", "started_at"):
            value = doc.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"the sidecar has no {name}")
            values[name] = value
        if values["codec"] not in FINAL_FORMATS:
            raise ValueError(f"the sidecar names an unknown codec {values['codec']!r}")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SpoolFiles:
    """The paths of one recording in the recordings folder."""

    directory: Path
    name: str

    @property
    def spool(self) -> Path:
        return self.directory / f"{self.name}{SPOOL_SUFFIX}"

    @property
    def sidecar(self) -> Path:
        return self.directory / f"{self.name}{SIDECAR_SUFFIX}"

    def final(self, codec: str) -> Path:
        return self.directory / f"{self.name}.final.{FINAL_FORMATS[codec].extension}"

    def leftovers(self) -> Iterator[Path]:
        """The final files a stop or a recovery may have left half-written."""
        yield from self.directory.glob(f"{self.name}.final.*")

    def remove(self) -> None:
        # The sidecar first: a spool without its sidecar is never filed twice.
        for path in (self.sidecar, self.spool, *self.leftovers()):
            path.unlink(missing_ok=True)

    def move_aside(self) -> Path:
        aside = self.directory / UNRECOVERABLE
        aside.mkdir(exist_ok=True)
        for path in (self.sidecar, self.spool):
            if path.exists():
                path.replace(aside / path.name)
        for path in self.leftovers():
            path.unlink()
        return aside


def lock_spool(path: Path, *, create: bool) -> int | None:
    """An fd holding an exclusive flock on the spool file; None when another holder has it.

    The lock dies with its process, so a spool locked by nobody belongs to a recording that ended
    without finishing its file.
    """
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass(frozen=True, slots=True)
class Finished:
    """A recording in its final, browser-playable container, ready to be filed."""

    path: Path
    content_type: str
    extension: str
    width: int | None
    height: int | None
    duration_s: float | None
    video_frames: int
    audio_frames: int


def finalize_spool(spool: Path, codec: str, dest: Path) -> Finished:
    """Make a spool file, whole or cut short by a crash, into its final container at `dest`.

    Video packets are copied, never decoded. The two voices are mixed into one audio track
    (recorder/voice_mix.py); a spool with one audio track (written before the voices were kept
    apart) has it copied. A truncated tail (a crash mid-cluster) ends the reading; a packet whose
    dts does not advance is dropped, as no muxer takes it. Raises RecordingDamaged when not a
    single video packet can be read.
    """
    final = FINAL_FORMATS[codec]
    counts = {"video": 0, "audio": 0}
    try:
        source = av.open(str(spool))
    except av.FFmpegError as e:
        raise RecordingDamaged(f"the spool file cannot be read: {e}") from None
    with source:
        video = [s for s in source.streams if s.type == "video"]
        audio = [s for s in source.streams if s.type == "audio"]
        if not video:
            raise RecordingDamaged("the spool file has no video stream")
        voices = [s.index for s in audio] if len(audio) > 1 else []
        copied = video + ([] if voices else audio)
        with av.open(str(dest), "w", format=final.container, container_options=final.options) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in copied}
            mixdown = Mixdown(out, voices) if voices else None
            last_dts: dict[int, int] = {}
            end_ms = 0
            try:
                for packet in source.demux(video + audio):
                    if packet.dts is None or packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    index = packet.stream.index
                    if index in last_dts and packet.dts <= last_dts[index]:
                        continue
                    last_dts[index] = packet.dts
                    ms = int(packet.dts * packet.time_base * 1000)
                    end_ms = max(end_ms, ms)
                    if mixdown is not None and index in voices:
                        mixdown.add(index, packet)
                        mixdown.write_until(ms)
                        continue
                    kind = packet.stream.type
                    packet.stream = streams[index]
                    out.mux(packet)
                    counts[kind] += 1
            except (av.FFmpegError, EOFError) as e:
                log.info("spool %s ends early (%s); kept what came before", spool.name, e)
            if counts["video"] == 0:
                raise RecordingDamaged("the spool file holds no video packet")
            if mixdown is not None:
                mixdown.finish(end_ms + VIDEO_FRAME_MS)
                counts["audio"] = mixdown.frames
                if mixdown.bad_packets:
                    log.info("spool %s: %d voice packets could not be decoded", spool.name, mixdown.bad_packets)
    with av.open(str(dest)) as check:
        duration = round(check.duration / 1_000_000, 2) if check.duration else None
        video_stream = check.streams.video[0]
        width, height = video_stream.codec_context.width or None, video_stream.codec_context.height or None
    return Finished(
        dest, final.content_type, final.extension, width, height, duration, counts["video"], counts["audio"]
    )


async def file_finished(
    filer: CaptureFiler, sidecar: Sidecar, finished: Finished
) -> MediaItem:
    """File a finished recording as the video of its invite, by whoever started it."""
    return await filer.file(
        sidecar.invite_id, MediaKind.VIDEO, finished.path, finished.content_type, finished.extension,
        sidecar.by_user_id, sidecar.by_name,
        width=finished.width, height=finished.height, duration_s=finished.duration_s,
    )


async def recover_recordings(recordings_dir: Path, filer: CaptureFiler) -> list[MediaItem]:
    """File every recording that an earlier run of the server left unfinished; returns what was filed.

    Run at start-up, before calls come in. A spool that another process still writes (its lock is
    held) is left alone. A recording that cannot be made playable, has a broken sidecar or belongs
    to an invite that no longer exists is moved to `unrecoverable/` and logged. One that fails
    for any other reason (the object store is down...) stays where it is for the next start-up.
    """
    filed: list[MediaItem] = []
    for files in await asyncio.to_thread(_unfinished, recordings_dir):
        try:
            item = await _recover(files, filer)
        except Exception:
            log.exception("recording %s was not recovered; left for the next start-up", files.name)
            continue
        if item is not None:
            filed.append(item)
    await asyncio.to_thread(_remove_orphans, recordings_dir)
    return filed


def _unfinished(recordings_dir: Path) -> list[SpoolFiles]:
    if not recordings_dir.is_dir():
        return []
    sidecars = sorted(recordings_dir.glob(f"*{SIDECAR_SUFFIX}"))
    return [SpoolFiles(recordings_dir, p.name.removesuffix(SIDECAR_SUFFIX)) for p in sidecars]


def _remove_orphans(recordings_dir: Path) -> None:
    if not recordings_dir.is_dir():
        return
    for spool in recordings_dir.glob(f"*{SPOOL_SUFFIX}"):
        if SpoolFiles(recordings_dir, spool.name.removesuffix(SPOOL_SUFFIX)).sidecar.exists():
            continue
        fd = lock_spool(spool, create=False)
        if fd is None:
            continue  # a recording starting in another process: its sidecar comes next
        try:
            # A sidecar goes first once its recording is filed: this one was filed, then the server stopped.
            log.warning("removed spool %s: its recording was filed before the server stopped", spool.name)
            spool.unlink(missing_ok=True)
        finally:
            os.close(fd)


async def _recover(files: SpoolFiles, filer: CaptureFiler) -> MediaItem | None:
    try:
        fd = await asyncio.to_thread(lock_spool, files.spool, create=False)
    except FileNotFoundError:
        _unrecoverable(files, "its spool file is missing")
        return None
    if fd is None:
        log.info("recording %s is still being written by another process", files.name)
        return None
    try:
        try:
            sidecar = Sidecar.loads(await asyncio.to_thread(files.sidecar.read_text))
        except (ValueError, OSError) as e:
            _unrecoverable(files, f"its sidecar is unreadable: {e}")
            return None
        try:
            finished = await asyncio.to_thread(finalize_spool, files.spool, sidecar.codec, files.final(sidecar.codec))
        except RecordingDamaged as e:
            _unrecoverable(files, e.message)
            return None
        try:
            item = await file_finished(filer, sidecar, finished)
        except NotFound as e:
            _unrecoverable(files, f"it cannot be filed: {e.message}")
            return None
        log.warning(
            "recovered recording %s of invite %s: %s s of video filed as %s",
            files.name, sidecar.invite_id, finished.duration_s, item.id,
        )
        await asyncio.to_thread(files.remove)
        return item
    finally:
        os.close(fd)


def _unrecoverable(files: SpoolFiles, why: str) -> None:
    try:
        where = files.move_aside()
    except OSError as e:
        log.error("recording %s cannot be recovered (%s) nor moved aside: %s", files.name, why, e)
        return
    log.error("recording %s cannot be recovered (%s); moved to %s", files.name, why, where)
