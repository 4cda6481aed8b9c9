"""Every allowed and every refused step of INVITED -> IN_CALL -> ACTIVE <-> IN_CALL -> CLOSED."""

from __future__ import annotations

import itertools

import pytest

from rooms import status
from rooms.errors import InvalidTransition
from rooms.models import InviteStatus as S

ALLOWED = {
    (S.INVITED, S.IN_CALL),
    (S.INVITED, S.CLOSED),
    (S.IN_CALL, S.ACTIVE),
    (S.IN_CALL, S.CLOSED),
    (S.ACTIVE, S.IN_CALL),
    (S.ACTIVE, S.CLOSED),
}
ALL_PAIRS = list(itertools.product(S, S))


@pytest.mark.parametrize(("src", "dst"), sorted(ALLOWED))
def test_allowed_step_passes(src: S, dst: S) -> None:
    status.check(src, dst)
    assert src in status.sources_of(dst)


@pytest.mark.parametrize(("src", "dst"), [p for p in ALL_PAIRS if p not in ALLOWED])
def test_refused_step_raises(src: S, dst: S) -> None:
    with pytest.raises(InvalidTransition):
        status.check(src, dst)
    assert src not in status.sources_of(dst)


def test_closed_is_final() -> None:
    assert status.ALLOWED[S.CLOSED] == frozenset()
