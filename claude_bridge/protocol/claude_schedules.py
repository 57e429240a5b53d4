"""Claude's own schedules (its CronCreate, CronDelete and ScheduleWakeup tools), read from its tool calls and results.

They live inside the CLI process, which fires them by itself; the bot keeps this book (on disk: sessions/
own_schedules.py), keeps a session with one pending alive, starts it again after a restart and lists them in /tasks.
Measured on CLI 2.1.332 and 2.1.197 (docs/claude-commands-and-schedules.md):
- CronCreate {cron, prompt, recurring, durable} answers "Scheduled recurring job <id> (…). … Auto-expires after 30
  days" (2.1.197: 7 days) or "Scheduled one-shot task <id> (…)"; CronDelete {id} answers "Cancelled job <id>." (an
  unknown id is an is_error result).
- ScheduleWakeup {delaySeconds, prompt} answers "Next wakeup scheduled for 02:47:00 (in 240s). …" on 2.1.332 (the time
  is rounded up, so the "in" is read); 2.1.197 outside /loop answers "Wakeup not scheduled. …" (not an error result,
  but nothing is pending).
- A process stopped and started again with --resume brings back, under the same ids, its recurring crons and the
  one-shots whose time is still to come. A session-only one-shot whose time came while no process ran never fires, and
  a wakeup never comes back: those are lost. A durable one-shot missed meanwhile the CLI puts to Claude at the start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.triggers.cron import CronTrigger

from claude_bridge.protocol.events import Event, ToolResult, ToolUse

TOOLS = frozenset({"CronCreate", "CronDelete", "ScheduleWakeup"})
_CREATED = re.compile(r"Scheduled (recurring job|one-shot task) ([0-9a-f]+)")
_CANCELLED = re.compile(r"Cancelled job ([0-9a-f]+)")
_WAKEUP_SET = "Next wakeup scheduled"
_WAKEUP_IN = re.compile(r"\(in (\d+)s\)")
_EXPIRES = re.compile(r"Auto-expires after (\d+) days?")
DAY = 86400.0
FIRED_GRACE = 120.0  # seconds a one-shot stays listed past its time (its turn may still be starting)
FIRE_WINDOW = 60.0  # a turn Claude starts this long after a schedule's time is that schedule's run (~21 s measured)
CLOCK_SKEW = 5.0  # seconds a run may seem to come before its time (the CLI's clock against the bot's)


@dataclass(frozen=True)
class ClaudeSchedule:
    """One of Claude's own schedules: its id, how it was set (a cron line or "in 600s"), its prompt."""

    id: str
    spec: str
    prompt: str
    recurring: bool
    due: float | None = None  # wall-clock time of a one-shot's run; None if recurring or unknown
    durable: bool = False  # kept by the CLI in the project's .claude/scheduled_tasks.json, not only in the process
    expires: float | None = None  # when the CLI deletes a recurring one by itself, as its result said

    @property
    def wakeup(self) -> bool:
        return self.id.startswith("wakeup-")

    def brief(self, limit: int = 60) -> str:
        """Its prompt on one line, cut to `limit` characters."""
        line = " ".join(self.prompt.split())
        return line if len(line) <= limit else line[: limit - 1] + "…"

    def comes_back(self, now: float) -> bool:
        """Whether a --resume at `now` brings it back (or, a durable one-shot missed, the CLI puts it to Claude)."""
        if self.wakeup or (self.expires is not None and self.expires <= now):
            return False
        return self.recurring or self.durable or (self.due is not None and self.due > now)


class ClaudeScheduleBook:
    """The schedules one session's CLI holds, as its tool calls and their results tell, across its restarts."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        held: Iterable[ClaudeSchedule] = (),
        calls: Iterable[ToolUse] = (),
    ) -> None:
        self._clock = clock
        self._calls = {call.id: call for call in calls}  # a call of one of TOOLS waiting for its result
        self._held = {schedule.id: schedule for schedule in held}
        self._running = False  # a process holds them now: only then does a one-shot whose time comes fire (and go)

    @property
    def held(self) -> tuple[ClaudeSchedule, ...]:
        """Every schedule the book holds, as it is kept."""
        return tuple(self._held.values())

    @property
    def calls(self) -> tuple[ToolUse, ...]:
        """The calls still waiting for their result (kept too: a reload may come between the two)."""
        return tuple(self._calls.values())

    def saw(self, event: Event) -> bool:
        """Follow one event of the stream (only TOOLS' calls and their results matter); True if the book changed."""
        if isinstance(event, ToolUse) and event.name in TOOLS:
            self._calls[event.id] = event
            return True
        if isinstance(event, ToolResult) and (call := self._calls.pop(event.tool_use_id, None)) is not None:
            if not event.is_error:  # an error: e.g. CronDelete of an unknown id
                self._apply(call, event.preview)
            return True
        return False

    def pending(self) -> tuple[ClaudeSchedule, ...]:
        """Those still to fire. While a process runs, a one-shot whose time has passed is gone (the CLI fired and
        deleted it); while none runs, they all wait for its next start, which tells what did not come back."""
        now = self._clock()
        if self._running:
            self._drop_due(now - FIRED_GRACE)
        for key in [k for k, s in self._held.items() if s.expires is not None and s.expires <= now]:
            del self._held[key]  # the CLI deleted it (it may fire once more meanwhile: it is gone from the list)
        return self.held

    def fired(self) -> ClaudeSchedule | None:
        """The schedule a turn Claude starts now runs: the one whose time came in the last minute. The CLI does not
        say which fired (2.1.332's `command_lifecycle` gives only the time); None if none or several did."""
        now = self._clock()
        came = [schedule for schedule in self._held.values() if _came(schedule, now)]
        return came[0] if len(came) == 1 else None

    def adopted(self) -> None:
        """A reload handed over the very process that holds them: it runs on, and so do they."""
        self._running = True

    def stopped(self) -> None:
        """The process stopped: a one-shot whose time had come fired before; a call cut off is never answered."""
        if self._running:
            self._drop_due(self._clock())
        self._running = False
        self._calls.clear()

    def restorable(self) -> bool:
        """Whether a --resume now brings back something to fire (or a missed durable one-shot to ask about)."""
        now = self._clock()
        return any(schedule.comes_back(now) for schedule in self._held.values())

    def restarted(self, *, resumed: bool = True) -> tuple[ClaudeSchedule, ...]:
        """The process started again (with --resume unless `resumed` is False: a new conversation keeps nothing);
        what did not come back is dropped and returned, but for a missed durable one-shot (the CLI asks about it)."""
        now = self._clock()
        lost = tuple(s for s in self._held.values() if not (resumed and s.comes_back(now)))
        self._held = {key: s for key, s in self._held.items() if resumed and s.comes_back(now)}
        self._calls.clear()
        self._drop_due(now)  # the durable one-shots missed: the CLI has put them to Claude, not to fire again
        self._running = True
        return tuple(s for s in lost if not (resumed and s.durable))

    def _drop_due(self, before: float) -> None:
        for key in [k for k, s in self._held.items() if not s.recurring and s.due is not None and s.due <= before]:
            del self._held[key]

    def _apply(self, call: ToolUse, result: str) -> None:
        prompt = str(call.input.get("prompt", ""))
        if call.name == "CronDelete":
            if (cancelled := _CANCELLED.search(result)) is not None:
                self._held.pop(cancelled.group(1), None)
        elif call.name == "CronCreate" and (created := _CREATED.search(result)) is not None:
            line = str(call.input.get("cron", ""))
            recurring = created.group(1) == "recurring job"
            due = None if recurring else _next_run(line, self._clock())
            durable = call.input.get("durable") is True
            lasts = _EXPIRES.search(result)
            expires = self._clock() + int(lasts.group(1)) * DAY if lasts and recurring else None
            made = ClaudeSchedule(created.group(2), line, prompt, recurring, due, durable, expires)
            self._held[created.group(2)] = made
        elif call.name == "ScheduleWakeup" and result.startswith(_WAKEUP_SET):
            said = _WAKEUP_IN.search(result)
            delay = float(said.group(1)) if said else _seconds(call.input.get("delaySeconds"))
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


def _came(schedule: ClaudeSchedule, now: float) -> bool:
    """Whether the schedule's time came in the FIRE_WINDOW before `now` (a few seconds of clock skew allowed)."""
    run = _next_run(schedule.spec, now - FIRE_WINDOW) if schedule.recurring else schedule.due
    return run is not None and now - FIRE_WINDOW <= run <= now + CLOCK_SKEW


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
