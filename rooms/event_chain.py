"""Tamper evidence for the event log: each event's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rooms.models import Actor, Event

GENESIS = "0" * 64


def _canonical_time(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def event_hash(
    prev_hash: str,
    invite_id: str,
    seq: int,
    at: datetime,
    kind: str,
    actor: Actor,
    data: dict[str, Any],
) -> str:
    body = json.dumps(
        [prev_hash, invite_id, seq, _canonical_time(at), kind, actor.kind, actor.id, actor.name, data],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    broken_at: int | None = None


def verify(events: Iterable[Event]) -> ChainCheck:
    prev = GENESIS
    expected_seq = 1
    for ev in events:
        if ev.seq != expected_seq or ev.prev_hash != prev:
            return ChainCheck(False, ev.seq)
        if event_hash(prev, ev.invite_id, ev.seq, ev.at, ev.kind, ev.actor, ev.data) != ev.hash:
            return ChainCheck(False, ev.seq)
        prev = ev.hash
        expected_seq += 1
    return ChainCheck(True)
