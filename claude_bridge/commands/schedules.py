"""The schedule commands, /every, /at, /cron and /schedules, for any front end: a command's args in, a Reply out.

Words and choices only; keeping time is sessions/schedules.py's job, and which session is active the caller's.
"""

from __future__ import annotations

from claude_bridge.commands.catalog import CommandSpec
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.schedules import Schedule, Schedules
from claude_bridge.sessions.when import ScheduleError

SPECS = (
    CommandSpec("every", "/every <interval> <prompt>", "run a prompt in the active session every 10m, 2h, 1d, …"),
    CommandSpec("at", "/at <when> <prompt>", "run a prompt once, at +10m, 14:30 or 2026-12-24 09:00"),
    CommandSpec("cron", '/cron "<min hour day month weekday>" <prompt>', "run a prompt on a cron line"),
    CommandSpec("schedules", "/schedules", "this chat's scheduled prompts (delete one)"),
)
PROMPT_PREVIEW = 60


def add(schedules: Schedules, place: Place, session: str, kind: str, args: str, creator: int | None) -> Reply:
    """`/every`, `/at` or `/cron` (kind) with its args: the schedule made, or the one-line reason it was not."""
    try:
        made = schedules.add(place, session, kind, args, creator)
    except ScheduleError as exc:
        return Reply(f"⚠️ {exc}")
    return Reply(f"⏰ Scheduled in session {session}, {made.label}: {shorten(made.prompt)}\n{next_line(made)}")


def listing(schedules: Schedules, place: Place) -> Reply:
    """`/schedules`: the place's schedules, soonest first, each with a Delete button."""
    found = schedules.of(place)
    if not found:
        return Reply("No scheduled prompts here. /every, /at and /cron make one.")
    lines = [f"{n}. [{s.session}] {s.label}: {shorten(s.prompt)}\n   {next_line(s)}" for n, s in enumerate(found, 1)]
    choices = tuple(Choice(f"🗑 Delete {n}", f"/schedules delete {s.id}") for n, s in enumerate(found, 1))
    return Reply("⏰ Scheduled prompts here:\n" + "\n".join(lines), choices)


def delete(schedules: Schedules, place: Place, schedule_id: str) -> Reply:
    """`/schedules delete <id>` (a Delete button): only the place's own schedules."""
    gone = schedules.delete(place, schedule_id)
    if gone is None:
        return Reply("That schedule is not here any more.")
    return Reply(f"🗑 Deleted: {gone.label}: {shorten(gone.prompt)}")


def heading(schedule: Schedule, late_by_seconds: float | None = None) -> str:
    """The line above a scheduled prompt's answer: `⏰ <prompt, shortened>`, and how late it runs if it does."""
    late = f" (runs {round(late_by_seconds / 60)} min late: the bot was down)" if late_by_seconds else ""
    return f"⏰ {shorten(schedule.prompt)}{late}"


def shorten(prompt: str) -> str:
    """A prompt on one line, cut to PROMPT_PREVIEW characters."""
    line = " ".join(prompt.split())
    return line if len(line) <= PROMPT_PREVIEW else line[: PROMPT_PREVIEW - 1] + "…"


def next_line(schedule: Schedule) -> str:
    """When it runs next, in the bot's zone."""
    return f"next: {schedule.next_run:%a %Y-%m-%d %H:%M}" if schedule.next_run else "next: —"
