"""Finding the binaries of backing services; a missing one fails under CI=true instead of skipping."""

from __future__ import annotations

import os

import pytest

from bench import services


def find_binary(name: str, extra_globs: tuple[str, ...] = ()) -> str:
    """bench/services.py's search (PATH, sbin, globs); missing: fail under CI=true, skip elsewhere."""
    try:
        return services.find_binary(name, extra_globs)
    except services.ServiceError:
        message = f"{name} is not installed (run `make test`, which installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
