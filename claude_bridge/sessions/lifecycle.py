"""Where one session stands, as one state with its allowed moves (no flags), and how that maps to and from the
`status` its metadata.json has always held. What /sessions shows (busy, live, …) is derived from it in session.py.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from claude_bridge.sessions.store import MetaStatus

logger = logging.getLogger(__name__)


class Lifecycle(StrEnum):
    """A session's one state."""

    NEW = "new"  # never started
    SUSPENDED = "suspended"  # no process; the next message starts one
    STARTING = "starting"  # a process is being started for a message
    LIVE = "live"  # a process runs (or restarts itself after a crash)
    RESTART_DUE = "restart due"  # it runs with earlier settings: restarted before the next message
    STOPPED = "stopped"  # no process: stopped by the bot (shutdown)
    FAILED = "failed"  # the last start failed, or the process gave up restarting; the next message tries again
    DAMAGED = "damaged"  # its state on disk cannot be read: it refuses messages until repaired or deleted
    DELETED = "deleted"  # removed: nothing of it is written any more


# Without a process a session can start (or be stopped, deleted, told it failed), or adopt one a reload handed over
# (LIVE); with one, anything but NEW.
_FROM_IDLE = {
    Lifecycle.STARTING,
    Lifecycle.LIVE,
    Lifecycle.SUSPENDED,
    Lifecycle.STOPPED,
    Lifecycle.FAILED,
    Lifecycle.DELETED,
}
_FROM_RUNNING = {
    Lifecycle.LIVE,
    Lifecycle.RESTART_DUE,
    Lifecycle.SUSPENDED,
    Lifecycle.STOPPED,
    Lifecycle.FAILED,
    Lifecycle.DELETED,
}
TRANSITIONS: dict[Lifecycle, set[Lifecycle]] = {
    Lifecycle.NEW: _FROM_IDLE,
    Lifecycle.SUSPENDED: _FROM_IDLE,
    Lifecycle.STOPPED: _FROM_IDLE,
    Lifecycle.FAILED: _FROM_IDLE,  # a process that gave up is still there: it is stopped before the next start
    Lifecycle.STARTING: _FROM_RUNNING,
    Lifecycle.LIVE: _FROM_RUNNING,
    Lifecycle.RESTART_DUE: _FROM_RUNNING,
    Lifecycle.DAMAGED: {Lifecycle.DELETED},
    Lifecycle.DELETED: set(),
}


class IllegalMove(RuntimeError):
    """A session was asked to move where its state does not allow (a bug, not a user error)."""


def checked(old: Lifecycle, new: Lifecycle) -> Lifecycle:
    """`new` if the move from `old` is allowed; IllegalMove otherwise."""
    if new is not old and new not in TRANSITIONS[old]:
        logger.error("illegal session move %s → %s", old.name, new.name)
        raise IllegalMove(f"{old.name} → {new.name}")
    return new


def from_disk(status: MetaStatus) -> Lifecycle:
    """The state a session loads in: no process runs yet, whatever the last run left."""
    return Lifecycle.SUSPENDED if status == MetaStatus.LIVE else Lifecycle(status.value)


def to_disk(state: Lifecycle) -> MetaStatus:
    """What metadata.json says of this state (the same words older versions wrote)."""
    match state:
        case Lifecycle.STARTING | Lifecycle.LIVE | Lifecycle.RESTART_DUE:
            return MetaStatus.LIVE
        case Lifecycle.DAMAGED | Lifecycle.DELETED:
            return MetaStatus.STOPPED
        case _:
            return MetaStatus(state.value)
