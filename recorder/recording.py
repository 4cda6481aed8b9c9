"""Recording a call: the claimant's camera as it arrives, and both sides' voices in one audio track.

Video is never decoded or re-encoded. The claimant's VP8 or H.264 packets are muxed as they arrived,
from the first keyframe on (a keyframe is asked for when the recording starts).

Audio: the claimant's microphone and the inspectors' voice (`CallMedia.voice`, what the claimant
hears) go into the spool as they came, each voice a stream of its own, never decoded during the
call. The final file has ONE Opus track, their mix, made when the recording is finished
(recorder/voice_mix.py): browsers play only the first audio track of a file. Decoding both voices
and encoding the mix live was two thirds of a recording's live cost (1.3 % of a core per call in
`bench calls`); at the end it takes about 0.8 s of CPU per minute recorded.

One timeline: aiortc rebases each received track's RTP clock to 0 on its own and keeps the sender's
clock mapping to itself, so the tracks are put side by side by wall clock (TrackClock): a packet's
position is its RTP time plus its track's anchor, the least delay seen between RTP time and arrival.
Arrival is stamped when the packet is published, less what aiortc's jitter buffer held it back (four
20 ms Opus frames for audio, one frame for video). A track whose packets all come later than its
anchor says follows them; one whose RTP time jumps (a claimant who reconnected) starts over, and
video then waits for its next keyframe. The recording's 0 is its first keyframe; dts only grow.

Written progressively: packets go to a Matroska spool file (see recorder/spool.py) that FFmpeg writes
in clusters of about a second, flushed to the file as each closes, and fsynced every few seconds. A
crashed server loses only the last ~1.5 s: the open cluster and one batch. The spool is made into the
final WebM/MP4 when the recording stops, or at the next start-up.

Threads: the event loop only stamps each published frame with its arrival time and puts it on a
queue (a publisher listener, no task of its own). All file work runs in one thread per recording,
woken every BATCH_S to take what has come: a few wake-ups a second, never one per packet.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.audio.stream import AudioStream
from av.container.output import OutputContainer
from av.stream import Stream

from media.call_media import CallMedia
from media.fanout import Publisher
from recorder.spool import Finished, Sidecar, SpoolFiles, finalize_spool, lock_spool
from recorder.voice_mix import RATE, add_voice_stream
from rooms.errors import RoomsError

log = logging.getLogger(__name__)

VIDEO, CLAIMANT_VOICE, INSPECTOR_VOICE = "video", "claimant", "inspectors"
VIDEO_CLOCK = 90_000
MS = Fraction(1, 1000)

BATCH_S = 0.25  # how often the writing thread takes what has arrived
CLUSTER_MS = 1000  # Matroska cluster length: what a crash can lose of what was muxed
FSYNC_S = 5.0
RESYNC_S = 1.0  # a track's RTP time this far from its arrival time is a new stream
DRIFT_S = 0.06  # a track whose packets all come this much later than its anchor says is re-anchored
DRIFT_WINDOW_S = 2.0
EARLY_S = 0.01  # jitter smaller than this does not move an anchor
KEYFRAME_RETRY_S = 1.0
AUDIO_HELD_S = 4 * 0.020  # aiortc's audio jitter buffer releases a frame four frames later
VIDEO_HELD_S = 1 / 30  # the video jitter buffer releases a frame when the next one begins


class AlreadyRecording(RoomsError):
    code = "already_recording"


class NotRecording(RoomsError):
    code = "not_recording"


class RecordingFailed(RoomsError):
    code = "recording_failed"


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1): 14 bits each at bytes 6-9."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def h264_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of an H.264 keyframe, from decoding it once (SPS parsing is not worth owning)."""
    decoder = av.CodecContext.create("h264", "r")
    try:
        frames = [*decoder.decode(av.Packet(data)), *decoder.decode(None)]
    except av.FFmpegError:
        return None
    pictures = [f for f in frames if isinstance(f, av.VideoFrame)]
    return (pictures[0].width, pictures[0].height) if pictures else None


def keyframe_size(codec: str, data: bytes) -> tuple[int, int] | None:
    return vp8_keyframe_size(data) if codec == "vp8" else h264_keyframe_size(data)


@dataclass(frozen=True, slots=True)
class Arrival:
    source: str
    packet: av.Packet[Any]
    pts: int  # read on the loop: the packet is shared with the forwarding, never touched after
    at: float  # time.monotonic() when it was published


class TrackClock:
    """Where one track's packets fall on the recording's timeline, in seconds.

    A packet's offset is its arrival time less its RTP time. The clock keeps the smallest offset seen
    (the least delayed packet) as the track's anchor, so network jitter does not move the track. It
    follows when every offset of a DRIFT_WINDOW_S window stays more than DRIFT_S above the anchor (a
    re-timestamped stream that lost packets, a sender clock running slow), and it starts over when an
    offset differs by more than RESYNC_S (a new RTP stream).
    """

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._anchor: float | None = None
        self._window_min = float("inf")
        self._window_end = 0.0

    def place(self, pts: int, arrived_s: float) -> tuple[float, bool]:
        """The packet's position, and whether the track starts over at this packet."""
        rtp_s = pts / self._rate
        offset = arrived_s - rtp_s
        if self._anchor is None or abs(offset - self._anchor) > RESYNC_S:
            self._anchor = offset
            self._window_min, self._window_end = float("inf"), arrived_s + DRIFT_WINDOW_S
            return arrived_s, True
        if offset < self._anchor - EARLY_S:  # less delayed than the anchor was: a better anchor
            self._anchor = offset
        self._window_min = min(self._window_min, offset)
        if arrived_s >= self._window_end:
            if self._window_min > self._anchor + DRIFT_S:
                self._anchor = self._window_min
            self._window_min, self._window_end = float("inf"), arrived_s + DRIFT_WINDOW_S
        return rtp_s + self._anchor, False


class SpoolWriter:
    """Muxes one recording into its spool file. Used by the recording's thread only."""

    def __init__(self, files: SpoolFiles, codec: str) -> None:
        self._path = files.spool
        self._codec = codec
        self._container: OutputContainer | None = None
        self._video: Stream | None = None
        self.t0: float | None = None  # monotonic time of the recording's 0
        self._video_clock = TrackClock(VIDEO_CLOCK)
        self._voice_clocks = {CLAIMANT_VOICE: TrackClock(RATE), INSPECTOR_VOICE: TrackClock(RATE)}
        self._voices: dict[str, AudioStream] = {}
        self._last_voice_ms = {CLAIMANT_VOICE: -1, INSPECTOR_VOICE: -1}
        self._need_keyframe = True
        self._last_video_ms = -1
        self.wants_keyframe = False
        self.width: int | None = None
        self.height: int | None = None
        self.video_packets = 0
        self.voice_packets = 0
        self.dropped = 0
        self.late_voice = 0
        self.mux_errors = 0

    @property
    def started(self) -> bool:
        return self._container is not None

    def feed(self, arrivals: list[Arrival]) -> None:
        for arrival in arrivals:
            if arrival.source == VIDEO:
                self._add_video(arrival)
            else:
                self._add_voice(arrival)

    def _open(self, width: int, height: int) -> None:
        container = av.open(
            str(self._path), "w", format="matroska",
            # Clusters of ~1 s, each flushed to the file when it closes: a crash loses at most the open one.
            container_options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
        )
        self._video = container.add_mux_stream(self._codec, width=width, height=height)
        self._voices = {source: add_voice_stream(container) for source in (CLAIMANT_VOICE, INSPECTOR_VOICE)}
        self._container = container

    def _add_video(self, arrival: Arrival) -> None:
        packet = arrival.packet
        if self.t0 is None:
            size = keyframe_size(self._codec, bytes(packet)) if packet.is_keyframe else None
            if size is None:
                self.dropped += 1
                return
            self.t0 = arrival.at - VIDEO_HELD_S
            self.width, self.height = size
            self._open(*size)
        position, anew = self._video_clock.place(arrival.pts, arrival.at - VIDEO_HELD_S - self.t0)
        if anew:
            self._need_keyframe = True  # a new RTP stream: nothing before its keyframe decodes
        if self._need_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                self.wants_keyframe = True
                return
            self._need_keyframe = False
        ms = max(round(position * 1000), self._last_video_ms + 1)  # dts must grow: nudge a repeat
        out = av.Packet(bytes(packet))
        out.pts = out.dts = ms
        out.time_base = MS
        out.is_keyframe = packet.is_keyframe
        assert self._video is not None  # opened at the first keyframe
        out.stream = self._video
        if self._mux(out):
            self._last_video_ms = ms
            self.video_packets += 1

    def _add_voice(self, arrival: Arrival) -> None:
        if self.t0 is None:
            return  # before the first keyframe: not in the recording
        position, _ = self._voice_clocks[arrival.source].place(arrival.pts, arrival.at - AUDIO_HELD_S - self.t0)
        ms = round(position * 1000)
        if ms < 0 or ms <= self._last_voice_ms[arrival.source]:
            self.late_voice += 1  # before the recording's 0, or a repeat: its time is taken
            return
        out = av.Packet(bytes(arrival.packet))
        out.pts = out.dts = ms
        out.time_base = MS
        out.stream = self._voices[arrival.source]
        if self._mux(out):
            self._last_voice_ms[arrival.source] = ms
            self.voice_packets += 1

    def _mux(self, packet: av.Packet[Any]) -> bool:
        assert self._container is not None
        try:
            self._container.mux(packet)
        except av.FFmpegError as e:
            self.mux_errors += 1
            if self.mux_errors == 1:
                log.warning("recording %s: a packet could not be muxed (%s); dropped", self._path.name, e)
            return False
        return True

    def finish(self) -> bool:
        """Close the spool; False when it has no video."""
        if self._container is None or self.t0 is None:
            return False
        self._container.close()
        self._release()
        return True

    def _release(self) -> None:
        # The voice streams hold Opus encoders (for their parameters) and FFmpeg worker threads: drop
        # them with the container, not whenever this writer is collected (bench soak saw threads pile up).
        self._container = None
        self._voices = {}
        self._video = None

    def abandon(self) -> None:
        """Close the spool after a failure, leaving it to recovery."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                log.exception("recording %s: the spool could not be closed", self._path.name)
            self._release()


class Recording:
    """One call's recording: the taps run on the event loop, the writing in the recording's own thread."""

    def __init__(self, media: CallMedia, files: SpoolFiles, sidecar: Sidecar) -> None:
        self.media = media
        self.files = files
        self.sidecar = sidecar
        self.writer = SpoolWriter(files, sidecar.codec)
        self._inbox: queue.SimpleQueue[Arrival] = queue.SimpleQueue()
        self._listening: list[tuple[Publisher, Callable[[av.Packet[Any]], None]]] = []
        self._video_started = False
        self._waiting_since = 0.0
        self._halt = threading.Event()
        self._done: concurrent.futures.Future[Finished | None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._stopping: asyncio.Future[Finished | None] | None = None
        self.cpu_s = 0.0  # CPU time of the writing thread, known once it ended

    @property
    def invite_id(self) -> str:
        return self.sidecar.invite_id

    async def start(self) -> None:
        self._lock_fd = await asyncio.to_thread(self._create_files)
        loop = asyncio.get_running_loop()
        self._waiting_since = time.monotonic()
        for source, publisher in ((VIDEO, self.media.video), (CLAIMANT_VOICE, self.media.audio),
                                  (INSPECTOR_VOICE, self.media.voice)):
            listener = functools.partial(self._take, source)
            publisher.listen(listener)
            self._listening.append((publisher, listener))
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name=f"recording-{self.files.name}", daemon=True
        )
        self._thread.start()
        self.media.video.request_keyframe()

    def _create_files(self) -> int:
        self.files.directory.mkdir(parents=True, exist_ok=True)
        fd = lock_spool(self.files.spool, create=True)
        assert fd is not None  # a fresh name: nobody else holds it
        tmp = self.files.sidecar.with_suffix(".tmp")
        tmp.write_text(self.sidecar.dumps())
        tmp.replace(self.files.sidecar)
        return fd

    def _take(self, source: str, packet: av.Packet[Any]) -> None:
        """Called on the event loop for every frame published: stamped and handed to the writing thread."""
        if self._done.done():
            return  # a writer that failed takes nothing more
        now = time.monotonic()
        if source == VIDEO:
            if self.media.codec != self.sidecar.codec:
                return  # the claimant re-negotiated another codec: not muxable into this file
            if not self._video_started:  # nothing before the first keyframe is recorded: not even queued
                if not packet.is_keyframe:
                    if now - self._waiting_since > KEYFRAME_RETRY_S:
                        self.media.video.request_keyframe()  # the first request may have been lost
                        self._waiting_since = now
                    return
                self._video_started = True
        if packet.pts is not None:
            self._inbox.put(Arrival(source, packet, int(packet.pts), now))

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        began = time.thread_time()
        synced = time.monotonic()
        try:
            while not self._halt.wait(BATCH_S):
                self._write_batch(loop)
                if time.monotonic() - synced >= FSYNC_S and self._lock_fd is not None:
                    os.fsync(self._lock_fd)  # any fd of the file syncs it: a power cut loses ≤ FSYNC_S too
                    synced = time.monotonic()
            self._write_batch(loop)
            result = None
            if self.writer.finish():
                codec = self.sidecar.codec
                result = finalize_spool(self.files.spool, codec, self.files.final(codec))
            self._done.set_result(result)
        except Exception as e:
            log.exception("recording %s failed; its spool is left for recovery", self.files.name)
            self.writer.abandon()
            self._done.set_exception(e)
        finally:
            self.cpu_s = time.thread_time() - began

    def _write_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch: list[Arrival] = []
        try:
            while True:
                batch.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        self.writer.feed(batch)
        if self.writer.wants_keyframe:
            self.writer.wants_keyframe = False
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self.media.video.request_keyframe)

    async def stop(self) -> Finished | None:
        """Finish the recording: its final file, or None when no keyframe ever came. Idempotent.

        Raises RecordingFailed when the file could not be written; the spool then stays for recovery.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> Finished | None:
        if self._thread is None:
            return None  # never started
        for publisher, listener in self._listening:
            publisher.unlisten(listener)
        self._halt.set()
        try:
            return await asyncio.wrap_future(self._done)
        except Exception as e:
            raise RecordingFailed("the recording could not be written; it is recovered when the server restarts") from e
        finally:
            await asyncio.to_thread(self._thread.join)
            log.info(
                "recording %s: %d video packets, %d voice packets, %d dropped, %.3f s CPU",
                self.files.name, self.writer.video_packets, self.writer.voice_packets, self.writer.dropped, self.cpu_s,
            )

    async def discard(self) -> None:
        """Remove the recording's files (it was filed, or holds nothing) and let go of its lock."""
        await asyncio.to_thread(self.files.remove)
        self.release()

    def release(self) -> None:
        """Let go of the spool's lock, leaving its files for recovery."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
