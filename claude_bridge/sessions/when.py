"""When a scheduled prompt runs: `/every`, `/at` and `/cron` specs read into APScheduler triggers, in the bot's zone.

Pure (the current time is passed in); a bad spec raises ScheduleError with the one line the user sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from claude_bridge.errors import BridgeError

MIN_EVERY = timedelta(minutes=1)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+[smhd])+")
_PART = re.compile(r"(\d+)([smhd])")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_QUOTED = re.compile(r'\s*["“”](.*?)["“”]\s*(.*)', re.DOTALL)  # phones type “smart” quotes
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class ScheduleError(BridgeError):
    """A schedule the user typed cannot be kept; the message is the one-line answer."""


@dataclass(frozen=True)
class When:
    """A parsed spec: the trigger that keeps time, how /schedules words it, and the prompt it runs."""

    trigger: Any  # an APScheduler trigger (the package has no type hints)
    label: str
    prompt: str


def duration(text: str) -> timedelta:
    """`10m`, `2h`, `1d`, `1h30m`, `90s` as a timedelta; ScheduleError if it is none of those."""
    if not _DURATION.fullmatch(text):
        raise ScheduleError(f"Unknown interval {text!r}: write it like 10m, 2h, 1d or 1h30m.")
    return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))


def every(args: str, tz: tzinfo, now: datetime) -> When:
    """`/every <interval> <prompt>`: every interval from now on, at least a minute apart."""
    spec, prompt = _split(args, "/every <interval> <prompt>, e.g. /every 2h run the tests")
    step = duration(spec)
    if step < MIN_EVERY:
        raise ScheduleError(f"{spec} is too often: at least every minute (1m).")
    trigger = IntervalTrigger(seconds=int(step.total_seconds()), start_date=now + step, timezone=tz)
    return When(trigger, f"every {spec}", prompt)


def at(args: str, tz: tzinfo, now: datetime) -> When:
    """`/at <when> <prompt>`: once, at `+10m`, `14:30` (its next occurrence) or `2026-12-24 09:00`."""
    spec, prompt = _split(args, "/at <when> <prompt>, e.g. /at 14:30 summarize the day")
    local_now = now.astimezone(tz)
    if spec.startswith("+"):
        moment = local_now + duration(spec[1:])
    elif _CLOCK.fullmatch(spec):
        moment = _next_clock(spec, local_now)
    elif _DATE.fullmatch(spec):
        clock, _, prompt = prompt.partition(" ")
        moment = _date_time(f"{spec} {clock}", tz)
        prompt = _need_prompt(prompt.strip(), "/at 2026-12-24 09:00 <prompt>")
    else:
        raise ScheduleError(f"Unknown time {spec!r}: write +10m, 14:30 or 2026-12-24 09:00.")
    if moment <= local_now:
        raise ScheduleError(f"{moment:%Y-%m-%d %H:%M} is in the past.")
    return When(DateTrigger(run_date=moment, timezone=tz), f"at {moment:%Y-%m-%d %H:%M:%S}", prompt)


def cron(args: str, tz: tzinfo) -> When:
    """`/cron "<min hour dom mon dow>" <prompt>`, with crontab's weekdays (0 and 7 are Sunday)."""
    found = _QUOTED.fullmatch(args)
    if not found:
        raise ScheduleError('Usage: /cron "<min hour day month weekday>" <prompt>, e.g. /cron "0 9 * * 1-5" tests')
    line, prompt = found[1].split(), _need_prompt(found[2].strip(), '/cron "0 9 * * 1-5" <prompt>')
    if len(line) != 5:
        raise ScheduleError(f"A cron line has 5 fields (minute hour day month weekday), not {len(line)}.")
    try:
        trigger = CronTrigger(
            minute=line[0], hour=line[1], day=line[2], month=line[3], day_of_week=_weekdays(line[4]), timezone=tz
        )
    except ValueError as exc:
        raise ScheduleError(f"Bad cron line {' '.join(line)!r}: {exc}") from exc
    return When(trigger, f"cron {' '.join(line)}", prompt)


def _split(args: str, usage: str) -> tuple[str, str]:
    spec, _, prompt = args.strip().partition(" ")
    if not spec:
        raise ScheduleError(f"Usage: {usage}")
    return spec, _need_prompt(prompt.strip(), usage)


def _need_prompt(prompt: str, usage: str) -> str:
    if not prompt:
        raise ScheduleError(f"The prompt is empty. Usage: {usage}")
    return prompt


def _next_clock(spec: str, local_now: datetime) -> datetime:
    hour, minute = (int(part) for part in spec.split(":"))
    moment = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return moment if moment > local_now else moment + timedelta(days=1)


def _date_time(text: str, tz: tzinfo) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    except ValueError as exc:
        raise ScheduleError(f"Unknown time {text!r}: write it like 2026-12-24 09:00.") from exc


def _weekdays(field: str) -> str:
    """Crontab's weekday field in APScheduler's words: its numbers start at Monday, crontab's at Sunday (0 or 7)."""
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first, last = _weekday(low), _weekday(high or low)
            last = 7 if high == "7" else last  # `5-7` is Friday to Sunday
        days.update(day % 7 for day in range(first, last + 1, step))
    if not days:
        raise ValueError(f"no weekday in {field!r}")
    return "*" if len(days) == 7 else ",".join(_DAY_NAMES[day] for day in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    if token[:3] in _DAY_NAMES:
        return _DAY_NAMES.index(token[:3])
    raise ValueError(f"unknown weekday {token!r}")
