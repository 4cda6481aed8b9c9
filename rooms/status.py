"""The invite status machine: INVITED -> IN_CALL -> ACTIVE <-> IN_CALL -> CLOSED."""

from rooms.errors import InvalidTransition
from rooms.models import InviteStatus

S = InviteStatus

# Closing is allowed from every open status (a user closes, or the link expires).
ALLOWED: dict[InviteStatus, frozenset[InviteStatus]] = {
    S.INVITED: frozenset({S.IN_CALL, S.CLOSED}),
    S.IN_CALL: frozenset({S.ACTIVE, S.CLOSED}),
    S.ACTIVE: frozenset({S.IN_CALL, S.CLOSED}),
    S.CLOSED: frozenset(),
}


def sources_of(target: InviteStatus) -> frozenset[InviteStatus]:
    """Every status from which `target` may be reached."""
    return frozenset(src for src, dests in ALLOWED.items() if target in dests)


def check(current: InviteStatus, target: InviteStatus) -> None:
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"an invite cannot go from {current} to {target}")
