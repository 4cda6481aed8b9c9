"""A real SMTP server (aiosmtpd) on a free loopback port, recording what it receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class SmtpRecorder:
    messages: list[Message] = field(default_factory=list)
    reject_next: int = 0  # answer that many DATA commands with a temporary failure

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reject_next > 0:
            self.reject_next -= 1
            return "451 4.3.0 mailbox temporarily unavailable"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.recorder = SmtpRecorder()
        self.port = port
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
