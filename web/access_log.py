"""The HTTP access log, without credentials: link tokens and signatures never reach a log file.

A claimant's link token sits in the path (`/join/{token}`, `/api/v1/join/{token}/...`) and signed
media links carry `signature=` in the query; aiohttp's default access log writes both verbatim, so
anyone who can read the logs could join a call or fetch a picture. This logger writes the route
with those parts replaced by `***`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

SECRET_PATH = re.compile(r"(/join/)[^/?#]+")
SECRET_QUERY = {"signature", "token", "grant", "jwt"}
MASK = "***"


def redact(path_qs: str) -> str:
    path, sep, query = path_qs.partition("?")
    path = SECRET_PATH.sub(rf"\g<1>{MASK}", path)
    if not sep:
        return path
    pairs = [(k, MASK if k.lower() in SECRET_QUERY else v) for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{urlencode(pairs, safe='*')}"


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %s %.3fs',
            request.remote,
            request.method,
            redact(request.path_qs),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
        )
