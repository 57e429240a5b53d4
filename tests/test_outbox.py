"""The per-chat Outbox on a fake clock with a recording bot: bursts, the sustained rate, 429s, separate budgets, and
futures nobody awaits. No real sleeping: each test takes milliseconds."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from recording_bot import RecordingBot, SteppedClock
from telegram.error import Forbidden, RetryAfter

from claude_bridge.telegram.outbox import OpKind, Outbox, Outboxes
from claude_bridge.telegram.streaming import Sender

pytestmark = pytest.mark.fast

PRIVATE, GROUP = 111, -100500
OUTBOX_LOGGER = "claude_bridge.telegram.outbox"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def bot(clock: SteppedClock) -> RecordingBot:
    return RecordingBot(clock)


def message(bot: RecordingBot, chat_id: int, text: str) -> Any:
    return lambda: bot.send_message(chat_id, text)


def draft(bot: RecordingBot, chat_id: int, text: str) -> Any:
    return lambda: bot.send_message_draft(chat_id, 7, text=text)


async def test_three_messages_go_at_once_and_the_fourth_waits_a_second(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)

    sent = [outbox.send(message(bot, PRIVATE, f"m{i}")) for i in range(4)]
    await clock.run_until(*sent)

    assert [(c.text, c.at) for c in bot.to("send_message")] == [("m0", 0), ("m1", 0), ("m2", 0), ("m3", 1.0)]
    await outbox.close()


async def test_a_private_chat_then_sends_one_a_second(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)

    sent = [outbox.send(message(bot, PRIVATE, "x")) for _ in range(5)]
    await clock.run_until(*sent)

    assert [c.at for c in bot.calls] == [0, 0, 0, 1.0, 2.0]
    await outbox.close()


async def test_a_group_then_sends_twenty_a_minute(clock, bot):
    outbox = Outbox(GROUP, clock=clock)

    sent = [outbox.send(message(bot, GROUP, "x")) for _ in range(5)]
    await clock.run_until(*sent)

    assert [c.at for c in bot.calls] == [0, 0, 0, pytest.approx(3.0), pytest.approx(6.0)]
    await outbox.close()


async def test_retry_after_pauses_the_chat_and_the_message_is_retried_in_order(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)
    bot.fail_next("send_message", RetryAfter(5))

    sent = [outbox.send(message(bot, PRIVATE, text)) for text in ("first", "second")]
    await clock.run_until(*sent)

    assert [(c.text, c.at) for c in bot.to("send_message")] == [("first", 0), ("first", 5.0), ("second", 5.0)]
    assert all(f.result() is not None for f in sent)
    await outbox.close()


async def test_a_rate_limited_frame_is_dropped_not_retried(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)
    bot.fail_next("send_message_draft", RetryAfter(2))

    dropped = outbox.frame("draft", draft(bot, PRIVATE, "stale"), kind=OpKind.DRAFT)
    await clock.run_until(dropped)
    answer = outbox.send(message(bot, PRIVATE, "final"))
    elapsed = await clock.run_until(answer)

    assert dropped.result() is None and [c.text for c in bot.to("send_message_draft")] == ["stale"]
    assert elapsed == 2.0  # the chat still honours the pause Telegram asked for
    await outbox.close()


async def test_drafts_and_typing_do_not_spend_the_message_budget(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)
    for i in range(10):
        await clock.run_until(outbox.frame("draft", draft(bot, PRIVATE, f"d{i}"), kind=OpKind.DRAFT))
    typing = outbox.frame("typing", lambda: bot.send_chat_action(PRIVATE, "typing"), kind=OpKind.ACTION)
    await clock.run_until(typing)

    sent = [outbox.send(message(bot, PRIVATE, f"part {i}")) for i in range(3)]
    elapsed = await clock.run_until(*sent)

    assert len(bot.to("send_message_draft")) == 10 and bot.to("send_chat_action")
    assert elapsed == 0
    await outbox.close()


async def test_a_live_edit_never_takes_the_last_token_so_the_answer_goes_at_once(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)
    edit = lambda: bot.edit_message_text("more", PRIVATE, 1)  # noqa: E731
    await clock.run_until(outbox.send(message(bot, PRIVATE, "preview")), outbox.frame("preview", edit))

    later_edit = outbox.frame("preview", edit)
    elapsed = await clock.run_until(outbox.send(message(bot, PRIVATE, "answer")))
    await clock.run_until(later_edit)

    assert elapsed == 0
    assert [(c.method, c.at) for c in bot.calls] == [
        ("send_message", 0), ("edit_message_text", 0), ("send_message", 0), ("edit_message_text", 2.0)
    ]
    await outbox.close()


async def test_a_newer_frame_replaces_an_unsent_one_with_the_same_key(clock, bot):
    outbox = Outbox(PRIVATE, clock=clock)
    first = outbox.frame("draft", draft(bot, PRIVATE, "one"), kind=OpKind.DRAFT)
    await clock.run_until(first)

    frames = [outbox.frame("draft", draft(bot, PRIVATE, text), kind=OpKind.DRAFT) for text in ("two", "three")]
    await clock.run_until(*frames)

    assert [c.text for c in bot.to("send_message_draft")] == ["one", "three"]
    await outbox.close()


def report_loop_errors() -> list[dict[str, Any]]:
    """Collect what asyncio reports to the loop's exception handler ("Future exception was never retrieved")."""
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    return reported


async def test_a_failed_send_nobody_awaits_is_never_reported_as_unretrieved(clock, bot, caplog):
    caplog.set_level(logging.CRITICAL, OUTBOX_LOGGER)  # a kept log record would keep the failed futures alive
    loop_errors = report_loop_errors()
    outbox = Outbox(PRIVATE, clock=clock)
    bot.fail_next("send_message", *(Forbidden("Forbidden: bot was blocked by the user") for _ in range(4)))

    forgotten = [outbox.send(message(bot, PRIVATE, "notice")), Sender(bot, outbox).text("x" * 9000)]  # type: ignore[arg-type]
    await clock.run_until(asyncio.wait(forgotten))  # waits without retrieving the outcome
    del forgotten
    gc.collect()

    assert len(bot.to("send_message")) == 4  # the notice and three parts of the long text
    assert [e["message"] for e in loop_errors] == []
    await outbox.close()


async def test_a_failed_send_is_logged_once_whether_or_not_it_is_awaited(clock, bot, caplog):
    outbox = Outbox(PRIVATE, clock=clock)
    bot.fail_next("send_message", *(Forbidden("Forbidden: bot was blocked by the user") for _ in range(2)))

    awaited, forgotten = outbox.send(message(bot, PRIVATE, "one")), outbox.send(message(bot, PRIVATE, "two"))
    await clock.run_until(asyncio.wait([awaited, forgotten]))

    with pytest.raises(Forbidden):
        await awaited
    assert sum("blocked by the user" in r.getMessage() for r in caplog.records) == 2
    await outbox.close()


async def test_idle_outboxes_beyond_the_limit_are_dropped_oldest_first_and_busy_ones_kept(clock: SteppedClock) -> None:
    boxes = Outboxes(clock=clock, limit=3)
    never_answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    busy = boxes(1)
    busy.send(lambda: never_answered)  # chat 1 has a message in flight

    for stranger in range(100, 110):
        boxes(stranger)

    assert len(boxes) == 3
    assert 1 in boxes and 108 in boxes and 109 in boxes and 100 not in boxes  # the newest idle ones stay
    assert boxes(1) is busy  # never dropped while it has work
    never_answered.set_result(None)
    await boxes.close()


async def test_an_outbox_whose_only_call_is_in_flight_is_not_dropped(clock: SteppedClock) -> None:
    boxes = Outboxes(clock=clock, limit=1)
    started, answer = asyncio.Event(), asyncio.get_running_loop().create_future()

    async def slow_call() -> str:
        started.set()
        return str(await answer)

    sent = boxes(1).send(slow_call)
    await started.wait()  # taken off the queue, waiting on Telegram
    boxes(2)

    assert 1 in boxes
    answer.set_result("delivered")
    assert await sent == "delivered"
    await boxes.close()
