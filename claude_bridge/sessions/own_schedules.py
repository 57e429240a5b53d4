"""Claude's own crons and wakeups of one session, kept in its state folder so the bot knows them across its restarts
and reloads (the CLI fires them; protocol/claude_schedules.py reads them from its tool calls).

Written atomically, and only when the book changed. What a restart lost is worded here for the session's home.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from claude_bridge.protocol.claude_schedules import ClaudeSchedule, ClaudeScheduleBook
from claude_bridge.protocol.events import Event, ToolUse
from claude_bridge.sessions.store import write_json_atomic

logger = logging.getLogger(__name__)

SCHEDULES_FILE = "claude_schedules.json"


class OwnSchedules:
    """The session's book of Claude's own schedules, read from and written back to its state folder."""

    def __init__(self, state_dir: Path, clock: Callable[[], float]) -> None:
        self._path = state_dir / SCHEDULES_FILE
        self._book = _load(self._path, clock)
        self._kept = self._state()

    def saw(self, event: Event) -> None:
        """Follow one event of a turn; the file follows the book."""
        if self._book.saw(event):
            self._save()

    def pending(self) -> tuple[ClaudeSchedule, ...]:
        """Those still to fire."""
        pending = self._book.pending()
        if len(pending) != len(self._kept["schedules"]):  # a one-shot's time passed: it fired
            self._save()
        return pending

    def fired(self) -> ClaudeSchedule | None:
        """The schedule whose run a turn Claude starts now is (None if none, or several, came due)."""
        return self._book.fired()

    def adopted(self) -> None:
        """A reload handed over the process that holds them."""
        self._book.adopted()

    def stopped(self) -> None:
        """The session's process stopped (a suspension, a shutdown, a crash)."""
        self._book.stopped()
        self._save()

    def restorable(self) -> bool:
        """Whether starting the process now (with --resume) brings back something to fire."""
        return self._book.restorable()

    def restarted(self, *, resumed: bool = True) -> tuple[ClaudeSchedule, ...]:
        """The process started again: the schedules that did not come back, dropped from the book."""
        lost = self._book.restarted(resumed=resumed)
        self._save()
        return lost

    def _state(self) -> dict[str, Any]:
        return {
            "schedules": [asdict(schedule) for schedule in self._book.held],
            "calls": [{"id": call.id, "name": call.name, "input": dict(call.input)} for call in self._book.calls],
        }

    def _save(self) -> None:
        """Write the book if it changed since it was last read or written (a failure is logged: the book in memory
        still holds, and the next change tries again)."""
        state = self._state()
        if state == self._kept:
            return
        try:
            write_json_atomic(self._path, state)
        except OSError as exc:
            logger.error("%s: could not keep Claude's own schedules: %s", self._path, exc)
            return
        self._kept = state


def lost_text(session: str, lost: tuple[ClaudeSchedule, ...]) -> str:
    """One line for the session's home: which of Claude's reminders a restart lost."""
    prompts = ", ".join(f"“{schedule.brief(40)}”" for schedule in lost)
    what = "reminder" if len(lost) == 1 else "reminders"
    verb = "was" if len(lost) == 1 else "were"
    return f"⏰ {session}: Claude's {what} {prompts} {verb} lost in the restart."


def fired_header(schedule: ClaudeSchedule) -> str:
    """The header of the turn a schedule of Claude's own started: which one, and its prompt."""
    what = "wakeup" if schedule.wakeup else f"cron `{schedule.spec}`"
    return f"⏰ Claude's {what}: {schedule.brief()}"


def _load(path: Path, clock: Callable[[], float]) -> ClaudeScheduleBook:
    """The kept book; an empty one when there is none, or when it cannot be read (said in the log)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        held = [_schedule(item) for item in raw["schedules"]]
        calls = [ToolUse(str(c["id"]), str(c["name"]), dict(c["input"])) for c in raw.get("calls", [])]
    except FileNotFoundError:
        return ClaudeScheduleBook(clock)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s: unreadable (%s); Claude's own schedules are not known until it makes them again", path, exc)
        return ClaudeScheduleBook(clock)
    return ClaudeScheduleBook(clock, held, calls)


def _schedule(item: Any) -> ClaudeSchedule:
    due, expires = item.get("due"), item.get("expires")
    return ClaudeSchedule(
        id=str(item["id"]),
        spec=str(item["spec"]),
        prompt=str(item["prompt"]),
        recurring=bool(item["recurring"]),
        due=float(due) if isinstance(due, int | float) else None,
        durable=bool(item.get("durable", False)),
        expires=float(expires) if isinstance(expires, int | float) else None,
    )
