"""/usage accounting and how the usage limit reads, in the bot's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from claude_bridge.commands.limit_wording import (
    CANCEL_COMMAND,
    clock_time,
    limit_message,
    queued_line,
    until,
    usage_text,
    warning_text,
)
from claude_bridge.commands.reply import Choice
from claude_bridge.protocol.events import TurnResult
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.limits import Hold, HoldState
from claude_bridge.sessions.usage import Tokens, UsageBook

pytestmark = pytest.mark.fast

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2026, 12, 5, 12, 47, tzinfo=BERLIN).timestamp()
THREE_PM = datetime(2026, 12, 5, 15, 0, tzinfo=BERLIN).timestamp()


def every(name: str) -> bool:
    """Every session is the asking place's."""
    return True


def turn(cost: float, inputs: int = 100, outputs: int = 20, cache_read: int = 0) -> TurnResult:
    usage = {"input_tokens": inputs, "output_tokens": outputs, "cache_read_input_tokens": cache_read,
             "cache_creation_input_tokens": 0, "server_tool_use": {"web_search_requests": 0}}
    return TurnResult(subtype="success", is_error=False, text="ok", cost_usd=cost, usage=usage)


def test_usage_keeps_the_last_turn_and_sums_the_day_per_session() -> None:
    book = UsageBook(BERLIN)
    book.record("work", turn(0.01, cache_read=1000), NOON)
    book.record("work", turn(0.02), NOON + 60)
    book.record("notes", turn(0.5), NOON)

    work = book.today("work", NOON + 120)

    assert (work.last_cost_usd, work.last_tokens) == (0.02, Tokens(100, 20))
    assert (round(work.today_cost_usd, 6), work.today_tokens.total, work.today_turns) == (0.03, 1240, 2)
    assert book.today("notes", NOON).today_cost_usd == 0.5
    assert book.sessions() == ["notes", "work"]


def test_today_starts_at_midnight_in_the_bots_zone() -> None:
    book = UsageBook(BERLIN)
    late = datetime(2026, 12, 5, 23, 30, tzinfo=BERLIN).timestamp()  # 22:30 UTC: still the 5th in UTC too
    book.record("work", turn(0.04), late)

    after_midnight = book.today("work", late + 3600)  # 00:30 in Berlin, 23:30 UTC

    assert (after_midnight.today_cost_usd, after_midnight.today_turns) == (0.0, 0)
    assert after_midnight.last_cost_usd == 0.04
    book.record("work", turn(0.01), late + 3600)
    assert book.today("work", late + 3600).today_cost_usd == 0.01


def test_the_limit_message_says_which_limit_when_and_offers_cancel() -> None:
    hold = Hold(HoldState.HELD, THREE_PM, "five_hour")

    reply = limit_message(hold, NOON, BERLIN)

    assert reply.text.startswith("⏸ Claude's 5-hour limit is reached. It resets at 15:00 (in 2 h 13 min).")
    assert "I'll continue by myself" in reply.text
    assert reply.choices == (Choice("Cancel", CANCEL_COMMAND),)


def test_the_limit_message_after_cancel_and_after_the_reset() -> None:
    cancelled = limit_message(Hold(HoldState.CANCELLED, THREE_PM, "seven_day"), NOON, BERLIN)
    done = limit_message(Hold(HoldState.NONE, 0, "seven_day"), THREE_PM, BERLIN)

    assert "weekly limit" in cancelled.text and "answered when you write again" in cancelled.text
    assert cancelled.choices == ()
    assert done.text == "▶️ Claude's weekly limit has reset; carrying on."


def test_the_queued_line_and_times_on_another_day() -> None:
    assert queued_line(Hold(HoldState.HELD, THREE_PM), NOON, BERLIN) == "⏳ Queued — after the limit resets at 15:00"
    tuesday = datetime(2026, 12, 8, 9, 30, tzinfo=BERLIN).timestamp()
    assert clock_time(tuesday, NOON, BERLIN) == "Tue 09:30"
    assert [until(s) for s in (30, 45 * 60, 3 * 3600, 3 * 86400 + 4 * 3600)] == [
        "under a minute", "45 min", "3 h", "3 d 4 h"
    ]


def test_warning_and_usage_text_show_the_last_known_limit() -> None:
    warning = RateLimit("allowed_warning", THREE_PM, "five_hour", utilization=0.9, surpassed_threshold=0.75)
    book = UsageBook(BERLIN)
    assert usage_text(book, NOON, BERLIN, every).splitlines() == [
        "No turns yet today.", "Plan limit: nothing reported (an API key, or no answer yet)."
    ]
    book.record("work", turn(0.0123), NOON)
    book.saw(warning)

    assert warning_text(warning, NOON, BERLIN) == "⚠️ Claude has used 90% of its 5-hour limit; it resets at 15:00."
    assert usage_text(book, NOON, BERLIN, every).splitlines() == [
        "• work: last turn $0.0123, 120 tokens; today $0.0123, 120 tokens in 1 turn",
        "⚠️ Claude has used 90% of its 5-hour limit; it resets at 15:00.",
    ]
    book.saw(RateLimit("rejected", THREE_PM, "seven_day"))
    assert usage_text(book, NOON, BERLIN, every).endswith("Plan limit: weekly limit reached, resets at 15:00.")


def test_a_sessions_line_is_kept_and_read_back() -> None:
    book = UsageBook(BERLIN)
    book.record("work", turn(0.01, cache_read=1000), NOON)
    book.record("work", turn(0.02), NOON + 60)

    again = UsageBook(BERLIN)
    again.restore("work", book.kept("work"))

    assert again.sessions() == ["work"] and again.today("work", NOON + 120) == book.today("work", NOON + 120)
    assert again.today("work", NOON + 86400).today_turns == 0  # tomorrow it starts from zero as before
    assert book.kept("never") == {}


def test_an_unreadable_line_starts_from_zero() -> None:
    book = UsageBook(BERLIN)
    book.restore("work", {"today_turns": "many"})
    assert book.sessions() == []
    book.record("work", turn(0.01), NOON)
    assert book.today("work", NOON).today_turns == 1
