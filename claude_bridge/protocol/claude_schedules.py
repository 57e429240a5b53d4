"""Claude's own schedules (its CronCreate, CronDelete and ScheduleWakeup tools), read from its tool calls and results.

They live inside the CLI process, which fires them by itself; the bot only keeps a session with one pending alive and
lists them in /tasks. Measured on CLI 2.1.332 and 2.1.197 (docs/claude-commands-and-schedules.md):
- CronCreate {cron, prompt, recurring} answers "Scheduled recurring job <id> (…)" or "Scheduled one-shot task <id>
  (…)"; CronDelete {id} answers "Cancelled job <id>." (an unknown id is an is_error result).
- ScheduleWakeup {delaySeconds, prompt} answers "Next wakeup scheduled for …" on 2.1.332; 2.1.197 outside /loop
  answers "Wakeup not scheduled. …" (not an error result, but nothing is pending).
- A restart with --resume restores recurring crons only: one-shots and wakeups are lost.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.triggers.cron import CronTrigger

from claude_bridge.protocol.events import Event, ToolResult, ToolUse

TOOLS = frozenset({"CronCreate", "CronDelete", "ScheduleWakeup"})
_CREATED = re.compile(r"Scheduled (recurring job|one-shot task) ([0-9a-f]+)")
_CANCELLED = re.compile(r"Cancelled job ([0-9a-f]+)")
_WAKEUP_SET = "Next wakeup scheduled"
FIRED_GRACE = 120.0  # seconds a one-shot stays listed past its time (its turn may still be starting)


@dataclass(frozen=True)
class ClaudeSchedule:
    """One of Claude's own schedules: its id, how it was set (a cron line or "in 600s"), its prompt."""

    id: str
    spec: str
    prompt: str
    recurring: bool
    due: float | None = None  # wall-clock time of a one-shot's run; None if recurring or unknown

    @property
    def wakeup(self) -> bool:
        return self.id.startswith("wakeup-")


class ClaudeScheduleBook:
    """The schedules a CLI process holds, as its tool calls and their results tell."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._calls: dict[str, ToolUse] = {}  # tool_use_id → a call of one of TOOLS waiting for its result
        self._held: dict[str, ClaudeSchedule] = {}

    def saw(self, event: Event) -> None:
        """Follow one event of the stream; only TOOLS' calls and their results matter."""
        if isinstance(event, ToolUse) and event.name in TOOLS:
            self._calls[event.id] = event
        elif isinstance(event, ToolResult):
            call = self._calls.pop(event.tool_use_id, None)
            if call is not None and not event.is_error:  # an error: e.g. CronDelete of an unknown id
                self._apply(call, event.preview)

    def pending(self) -> tuple[ClaudeSchedule, ...]:
        """Those still to fire (a one-shot whose time has passed is gone: the CLI fired and deleted it)."""
        now = self._clock()
        for key in [k for k, s in self._held.items() if s.due is not None and s.due + FIRED_GRACE < now]:
            del self._held[key]
        return tuple(self._held.values())

    def restarted(self) -> None:
        """The process started again with --resume: only recurring crons came back."""
        self._held = {key: s for key, s in self._held.items() if s.recurring}
        self._calls.clear()

    def _apply(self, call: ToolUse, result: str) -> None:
        prompt = str(call.input.get("prompt", ""))
        if call.name == "CronDelete":
            if (cancelled := _CANCELLED.search(result)) is not None:
                self._held.pop(cancelled.group(1), None)
        elif call.name == "CronCreate" and (created := _CREATED.search(result)) is not None:
            line = str(call.input.get("cron", ""))
            recurring = created.group(1) == "recurring job"
            due = None if recurring else _next_run(line, self._clock())
            self._held[created.group(2)] = ClaudeSchedule(created.group(2), line, prompt, recurring, due)
        elif call.name == "ScheduleWakeup" and result.startswith(_WAKEUP_SET):
            delay = _seconds(call.input.get("delaySeconds"))
            key = f"wakeup-{call.id}"
            self._held[key] = ClaudeSchedule(key, f"in {delay:.0f}s", prompt, False, self._clock() + delay)


def _next_run(line: str, now: float) -> float | None:
    """When a cron line (in the machine's zone, as the CLI reads it) runs next; None if it cannot be read."""
    try:
        trigger = CronTrigger.from_crontab(line)
    except ValueError:
        return None
    start = datetime.fromtimestamp(now).astimezone()
    following = trigger.get_next_fire_time(None, start)
    return following.timestamp() if following is not None else None


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
