"""A call recorded in a process of its own, for the crash test: it records until it is killed.

Run as `python -m tests.support.record_child RECORDINGS_DIR INVITE_ID USER_ID USER_NAME`. It prints
`recording` once the recording has started, then waits for SIGKILL; nothing finishes the file.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from media.ice import IceSettings, install_host_addresses
from media.plane import MediaPlane
from recorder.recording import Recording
from recorder.spool import Sidecar, SpoolFiles
from tests.support.rtc_bots import claimant_bot, inspector_bot

LOOPBACK = ("127.0.0.1",)


async def record_until_killed(recordings_dir: Path, invite_id: str, user_id: str, user_name: str) -> None:
    install_host_addresses(LOOPBACK)
    plane = MediaPlane(IceSettings(host_addresses=LOOPBACK))
    claimant, inspector = claimant_bot(), inspector_bot(hz=880)
    await claimant.connect(lambda sdp: plane.negotiate(invite_id, "sid-claimant", "claimant", sdp))
    await inspector.connect(lambda sdp: plane.negotiate(invite_id, "sid-inspector", "inspector", sdp))
    await inspector.wait_for("video", 10)
    media = plane.call(invite_id)
    assert media is not None
    sidecar = Sidecar(invite_id, user_id, user_name, media.codec, datetime.now(UTC).isoformat())
    recording = Recording(media, SpoolFiles(recordings_dir, f"{invite_id}-child"), sidecar)
    await recording.start()
    print("recording", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    directory, invite, user, name = sys.argv[1:5]
    asyncio.run(record_until_killed(Path(directory), invite, user, name))
