"""The schedule commands, /every, /at, /cron and /schedules, for any front end: a command's args in, a Reply out.

Words and choices only; keeping time is sessions/schedules.py's job, and which session is active the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.errors import BridgeError
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Author, Place
from claude_bridge.sessions.schedules import Schedule, ScheduleGone, Schedules
from claude_bridge.sessions.when import ScheduleError
from claude_bridge.sessions.worker import Delivery

PROMPT_PREVIEW = 60
UNAVAILABLE = "Scheduled prompts are not available here."


def add(schedules: Schedules, place: Place, session: str, kind: str, args: str, creator: Author | None) -> Reply:
    """`/every`, `/at` or `/cron` (kind) with its args: the schedule made, or the one-line reason it was not."""
    try:
        made = schedules.add(place, session, kind, args, creator)
    except ScheduleError as exc:
        return Reply(f"⚠️ {exc}")
    return Reply(f"⏰ Scheduled in session {session}, {made.label}: {shorten(made.prompt)}\n{next_line(made)}")


def listing(schedules: Schedules, place: Place) -> Reply:
    """`/schedules`: the place's schedules, soonest first, who made each (a group has several people), each with a
    Delete button."""
    found = schedules.of(place)
    if not found:
        return Reply("No scheduled prompts here. /every, /at and /cron make one.")
    lines = [listed(n, s) for n, s in enumerate(found, 1)]
    choices = tuple(Choice(f"🗑 Delete {n}", f"/schedules delete {s.id}") for n, s in enumerate(found, 1))
    return Reply("⏰ Scheduled prompts here:\n" + "\n".join(lines), choices)


def delete(schedules: Schedules, place: Place, schedule_id: str) -> Reply:
    """`/schedules delete <id>` (a Delete button): only the place's own schedules."""
    gone = schedules.delete(place, schedule_id)
    if gone is None:
        return Reply("That schedule is not here any more.")
    return Reply(f"🗑 Deleted: {gone.label}: {shorten(gone.prompt)}")


def dropped_text(session: str, dropped: list[Schedule]) -> str:
    """What a place reads when a deleted session's schedules went with it."""
    lines = [f"🗑 Session {session} was deleted, so its scheduled prompt(s) here were removed:"]
    return "\n".join([*lines, *(f"• {s.label}: {shorten(s.prompt)}" for s in dropped)])


def gone_text(schedule: Schedule) -> str:
    """What a place reads when a schedule fired for a session that no longer exists."""
    return f"🗑 {heading(schedule)}: session {schedule.session} no longer exists, so this schedule was removed."


def missed_text(schedule: Schedule, due_text: str) -> str:
    """What a place reads when a run was missed by more than an hour while the bot was down."""
    return (
        f"⏰ Missed: {shorten(schedule.prompt)} (session {schedule.session}) was due {due_text} while the bot was "
        "down, more than an hour ago; it was skipped."
    )


def heading(schedule: Schedule, late_by_seconds: float | None = None) -> str:
    """The line above a scheduled prompt's answer: `⏰ <prompt, shortened>`, and how late it runs if it does."""
    late = f" (runs {round(late_by_seconds / 60)} min late: the bot was down)" if late_by_seconds else ""
    return f"⏰ {shorten(schedule.prompt)}{late}"


def shorten(prompt: str) -> str:
    """A prompt on one line, cut to PROMPT_PREVIEW characters."""
    line = " ".join(prompt.split())
    return line if len(line) <= PROMPT_PREVIEW else line[: PROMPT_PREVIEW - 1] + "…"


def listed(number: int, schedule: Schedule) -> str:
    """One schedule in /schedules: its session, when, its prompt; then when next, and who made it."""
    first = f"{number}. [{schedule.session}] {schedule.label}: {shorten(schedule.prompt)}"
    return f"{first}\n   {next_line(schedule)}{by_line(schedule)}"


def by_line(schedule: Schedule) -> str:
    """Who made it, if the bot knows (a job kept from before it recorded that has no name)."""
    return f" · by {schedule.creator_name}" if schedule.creator_name else ""


def next_line(schedule: Schedule) -> str:
    """When it runs next, in the bot's zone."""
    return f"next: {schedule.next_run:%a %Y-%m-%d %H:%M}" if schedule.next_run else "next: —"


class Runner:
    """A front end's FireTarget: a due prompt enters its session through the manager's send path, as a message
    from the place that scheduled it (queued if busy, a suspended session resumed, its approvals asked there);
    `show` shows its turn there under the heading."""

    def __init__(self, manager: SessionManager, show: Callable[[Delivery, str], None]) -> None:
        self.manager = manager
        self._show = show

    async def fire(self, schedule: Schedule, late_by: timedelta | None) -> None:
        if not self.manager.exists(schedule.session):
            await self.manager.front_end.notify(schedule.place, gone_text(schedule))
            raise ScheduleGone(schedule.id)
        title = heading(schedule, late_by.total_seconds() if late_by else None)
        try:
            delivery = await self.manager.send(schedule.place, schedule.prompt, session_name=schedule.session)
        except BridgeError as exc:
            await self.manager.front_end.notify(schedule.place, f"{title}\n⚠️ Not run: {exc}")
            return
        self._show(delivery, title)

    async def missed(self, schedule: Schedule, due: datetime) -> None:
        await self.manager.front_end.notify(schedule.place, missed_text(schedule, f"{due:%a %Y-%m-%d %H:%M}"))
