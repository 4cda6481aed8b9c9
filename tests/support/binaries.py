"""Finding the binaries of backing services; a missing one fails under CI=true instead of skipping."""

from __future__ import annotations

import glob
import os
import shutil

import pytest


def find_binary(name: str, extra_globs: tuple[str, ...] = ()) -> str:
    path = shutil.which(name)
    if path:
        return path
    for pattern in extra_globs:
        hits = sorted(glob.glob(pattern), reverse=True)
        if hits:
            return hits[0]
    message = f"{name} is not installed (run `make test`, which installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
