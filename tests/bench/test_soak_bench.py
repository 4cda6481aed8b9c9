"""`claimcam bench soak`, tiny: the warm-up round of calls and one short cycle after it, short pauses (the server
pinging its sockets every second), and the server's resources back where they started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLAIMCAM = str(Path(sys.executable).with_name("claimcam"))


def test_a_short_soak_reports_cycles_and_returns_to_baseline(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [CLAIMCAM, "bench", "soak", "--calls", "2", "--minutes", "5", "--cycles", "1", "--cycle-seconds", "2",
         "--quiet-seconds", "2", "--size", "320x240", "--json", str(out)],
        capture_output=True, timeout=240,
    )
    report = json.loads(out.read_text())
    assert report["cycles"] == 1 and report["calls_run"] == 2, done.stderr.decode()
    assert report["failed_calls"] == 0 and report["errors"] == [], report["errors"]
    labels = [s["label"] for s in report["samples"]]
    assert labels[0] == "baseline" and labels[-1] == "end" and "cycle 1" in labels
    # During no cycle sample is anything left open: peers and calls close when the calls end.
    assert all(s["gauges"]["peer_connections"] == 0 for s in report["samples"])
    assert report["peer_connections_at_end"] == 0 and report["calls_with_media_at_end"] == 0
    assert report["returned_to_baseline"] is True, report
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "| baseline |" in done.stdout.decode() and "Back to baseline: yes" in done.stdout.decode()


def test_bad_options_exit_2() -> None:
    done = subprocess.run([CLAIMCAM, "bench", "soak", "--calls", "0"], capture_output=True, timeout=60)
    assert done.returncode == 2 and b"--calls must be" in done.stderr
