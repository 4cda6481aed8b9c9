"""Dependencies point one way: web -> signalling -> recorder -> media -> rooms."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ORDER = ["rooms", "media", "recorder", "signalling", "web"]
# What each package may not import: everything above it, and for rooms the web/socket frameworks too.
FORBIDDEN = {pkg: set(ORDER[i + 1 :]) for i, pkg in enumerate(ORDER)}
FORBIDDEN["rooms"] |= {"aiohttp.web", "socketio", "aiortc", "av"}
FORBIDDEN["media"] |= {"aiohttp.web", "socketio"}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", ORDER)
def test_package_imports_only_downwards(package: str) -> None:
    offences = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offences == []
