"""The lifecycle of one ClaudeSubprocess as a single State, and the only moves between states it may make."""

from __future__ import annotations

from enum import Enum


class State(Enum):
    """Where the process is in its life; `_to` allows only the moves in TRANSITIONS."""

    NEW = "new"  # not started yet
    STARTING = "starting"  # spawned, waiting for `initialize` to be answered
    READY = "ready"  # alive, no turn running: the next message may be written
    BUSY = "busy"  # a turn runs (ours or Claude's own)
    RECOVERING = "recovering"  # crashed; respawning with --continue
    FAILED = "failed"  # recovery gave up; the next message tries a fresh start
    STOPPING = "stopping"
    STOPPED = "stopped"  # for good


TRANSITIONS: dict[State, frozenset[State]] = {
    State.NEW: frozenset({State.STARTING, State.STOPPING}),
    # a failed start goes back to where it came from: NEW (start()), RECOVERING (a retry) or FAILED (a later message)
    State.STARTING: frozenset({State.READY, State.NEW, State.RECOVERING, State.FAILED, State.STOPPING}),
    State.READY: frozenset({State.BUSY, State.RECOVERING, State.STOPPING}),
    State.BUSY: frozenset({State.READY, State.RECOVERING, State.STOPPING}),
    State.RECOVERING: frozenset({State.STARTING, State.FAILED, State.STOPPING}),
    State.FAILED: frozenset({State.STARTING, State.STOPPING}),
    State.STOPPING: frozenset({State.STOPPED}),
    State.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A bug: the process tried a lifecycle move TRANSITIONS does not allow."""
