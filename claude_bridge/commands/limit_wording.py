"""How the usage limit reads to the user, for both front ends: the one limit message (and its later states), the
queued line, the quiet warning, and /usage. Times are shown in the bot's zone.

Plain strings and Replies from the sessions layer's facts (Hold, RateLimit, UsageBook); nothing is sent from here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.protocol.limits import LIMIT_NAMES, RateLimit
from claude_bridge.sessions.limits import Hold, HoldState
from claude_bridge.sessions.usage import SessionUsage, UsageBook

CANCEL_COMMAND = "/limit cancel"  # the limit message's Cancel button runs this


def clock_time(at: float, now: float, zone: tzinfo) -> str:
    """A reset time as people say it: "15:00" today, "Tue 09:30" on another day."""
    when, today = datetime.fromtimestamp(at, zone), datetime.fromtimestamp(now, zone)
    return when.strftime("%H:%M") if when.date() == today.date() else when.strftime("%a %H:%M")


def until(seconds: float) -> str:
    """A short duration ahead: "under a minute", "45 min", "2 h 13 min", "3 d 4 h"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _limit_name(limit_type: str) -> str:
    return LIMIT_NAMES.get(limit_type, "usage limit")


def limit_message(hold: Hold, now: float, zone: tzinfo) -> Reply:
    """The one message a place gets for a hold; edited to its new text whenever the hold's state changes."""
    name, at = _limit_name(hold.limit_type), clock_time(hold.until, now, zone)
    match hold.state:
        case HoldState.HELD:
            text = (
                f"⏸ Claude's {name} is reached. It resets at {at} (in {until(hold.until - now)}).\n"
                "Your messages wait in line; I'll continue by myself when it resets."
            )
            return Reply(text, (Choice("Cancel", CANCEL_COMMAND),))
        case HoldState.CANCELLED:
            return Reply(
                f"⏸ Claude's {name} is reached; it resets at {at}.\n"
                "Cancelled: nothing is sent by itself. Your waiting messages are answered when you write again."
            )
        case _:
            return Reply(f"▶️ Claude's {name} has reset; carrying on.")


def queued_line(hold: Hold, now: float, zone: tzinfo) -> str:
    """What a message that waits for the reset shows instead of "Queued, #n"."""
    return f"⏳ Queued — after the limit resets at {clock_time(hold.until, now, zone)}"


def warning_text(limit: RateLimit, now: float, zone: tzinfo) -> str:
    """The quiet note for a warning (shown once per window)."""
    used = limit.utilization if limit.utilization is not None else limit.surpassed_threshold
    share = f"{used:.0%} of " if used is not None else "close to "
    reset = f"; it resets at {clock_time(limit.resets_at, now, zone)}" if limit.resets_at else ""
    return f"⚠️ Claude has used {share}its {limit.limit_name}{reset}."


def _usage_line(name: str, usage: SessionUsage) -> str:
    last = f"last turn ${usage.last_cost_usd:.4f}, {usage.last_tokens.total:,} tokens"
    turns = f"{usage.today_turns} turn{'' if usage.today_turns == 1 else 's'}"
    today = f"today ${usage.today_cost_usd:.4f}, {usage.today_tokens.total:,} tokens in {turns}"
    return f"• {name}: {last}; {today}"


def usage_text(book: UsageBook, now: float, zone: tzinfo, shown: Callable[[str], bool]) -> str:
    """What /usage shows: the sessions `shown` lets the asking place see, and the account's plan limit."""
    names = [name for name in book.sessions() if shown(name)]
    lines = [_usage_line(name, book.today(name, now)) for name in names] or ["No turns yet today."]
    limit = book.limit
    if limit is None:
        lines.append("Plan limit: nothing reported (an API key, or no answer yet).")
    elif limit.rejected and limit.resets_at:
        lines.append(f"Plan limit: {limit.limit_name} reached, resets at {clock_time(limit.resets_at, now, zone)}.")
    elif limit.warns:
        lines.append(warning_text(limit, now, zone))
    else:
        lines.append("Plan limit: within limits.")
    return "\n".join(lines)
