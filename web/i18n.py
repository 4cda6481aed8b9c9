"""The text catalogues of the pages, shared by the server-rendered pages and the browser.

Every user-visible string lives in `web/static/i18n/{language}.json` (flat `"area.name": "text"`,
placeholders as `{name}`). The browser loads the same files from /static/i18n/, so a string is
translated once for both. Server-rendered pages pick the language from Accept-Language; the calls
page prefers the portal's language once it knows the case.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

CATALOGUE_DIR = Path(__file__).parent / "static" / "i18n"
LANGUAGES = ("en", "fi")
DEFAULT_LANGUAGE = "en"
PLACEHOLDER = re.compile(r"{(\w+)}")


@cache
def catalogue(language: str) -> dict[str, str]:
    if language not in LANGUAGES:
        raise KeyError(f"no catalogue for language {language!r}")
    data = json.loads((CATALOGUE_DIR / f"{language}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{language}.json must map keys to strings")
    return data


def negotiate(accept_language: str | None) -> str:
    """The first supported language of an Accept-Language header, by q-value; English otherwise."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            choices.append((-q, i, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


def translate(language: str, key: str, **params: object) -> str:
    """The text of `key` with `{name}` placeholders filled; a missing key is a bug, so it raises."""
    text = catalogue(language).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANGUAGE)[key]
    return PLACEHOLDER.sub(lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), text)
