"""TurnView in-process: a scripted event stream in, a recording bot and a fake-clock Outbox underneath."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from recording_bot import BotCall, RecordingBot, SteppedClock

from claude_bridge.protocol.events import AssistantText, Event, TextDelta, TurnResult
from claude_bridge.sessions.worker import Notice
from claude_bridge.telegram.outbox import Outbox
from claude_bridge.telegram.streaming import ChatPrefs, Sender, TurnView

pytestmark = pytest.mark.fast

PRIVATE, GROUP = 111, -100500


class Stream:
    """A turn's event stream the test feeds by hand."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event | Notice] = asyncio.Queue()

    def push(self, *events: Event | Notice) -> None:
        for event in events:
            self._queue.put_nowait(event)

    def finish(self, text: str) -> None:
        self.push(AssistantText(text), TurnResult(subtype="success", is_error=False, text=text))

    async def events(self) -> AsyncIterator[Event | Notice]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, TurnResult):
                return


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def bot(clock: SteppedClock) -> RecordingBot:
    return RecordingBot(clock)


def view_in(bot: RecordingBot, outbox: Outbox) -> TurnView:
    return TurnView(Sender(bot, outbox), ChatPrefs())  # type: ignore[arg-type]


async def shown(bot: RecordingBot, method: str, needle: str) -> BotCall:
    """Wait until the bot was called with `needle` in the text."""
    while not (found := [c for c in bot.to(method) if needle in c.text]):
        await bot.called.wait()
        bot.called.clear()
    return found[0]


async def test_a_three_part_answer_is_sent_at_once_after_the_drafts(clock, bot):
    outbox, stream = Outbox(PRIVATE, clock=clock), Stream()
    view = view_in(bot, outbox)
    answer = "\n\n".join(f"Paragraph {i}: " + "words " * 500 for i in range(3))
    running = asyncio.ensure_future(view.run(stream.events()))

    for i in range(10):
        stream.push(TextDelta(f"word{i} "))
        await clock.run_until(shown(bot, "send_message_draft", f"word{i}"))
    stream.finish(answer)
    await clock.run_until(running)

    parts = bot.to("send_message")
    assert len(parts) == 3 and len({c.at for c in parts}) == 1  # no part waited for another
    assert bot.calls.index(parts[0]) > max(bot.calls.index(d) for d in bot.to("send_message_draft"))
    await outbox.close()


async def test_a_queued_turns_view_shows_no_thinking_bubble_over_the_running_turns_draft(clock, bot):
    outbox, running_stream, queued_stream = Outbox(PRIVATE, clock=clock), Stream(), Stream()
    running_view = view_in(bot, outbox)
    queued_view = TurnView(Sender(bot, outbox), ChatPrefs(), queued=True)  # type: ignore[arg-type]
    running = asyncio.ensure_future(running_view.run(running_stream.events()))
    running_stream.push(TextDelta("live answer "))
    await clock.run_until(shown(bot, "send_message_draft", "live answer"))

    waiting = asyncio.ensure_future(queued_view.run(queued_stream.events()))
    for _ in range(10):  # two seconds of fake time: any draft the queued view queued has gone out by now
        clock.advance(0.2)
        for _ in range(10):
            await asyncio.sleep(0)
    assert {c.params["draft_id"] for c in bot.to("send_message_draft")} == {running_view.draft_id}

    running_stream.finish("done")
    queued_stream.push(TextDelta("second answer "))
    await clock.run_until(shown(bot, "send_message_draft", "second answer"))
    queued_stream.finish("second")
    await clock.run_until(asyncio.gather(running, waiting))
    await outbox.close()


async def test_a_queued_turns_view_does_not_discard_the_running_turns_frames(clock, bot):
    outbox, running_stream, queued_stream = Outbox(PRIVATE, clock=clock), Stream(), Stream()
    running, queued = view_in(bot, outbox), view_in(bot, outbox)
    first = asyncio.ensure_future(running.run(running_stream.events()))
    await clock.run_until(shown(bot, "send_message_draft", ""))  # the running turn's "Thinking…" bubble

    running_stream.push(TextDelta("the running answer"))
    second = asyncio.ensure_future(queued.run(queued_stream.events()))  # its empty draft is queued next

    draft = await clock.run_until(shown(bot, "send_message_draft", "the running answer"))
    assert draft is not None
    running_stream.finish("the running answer, finished")
    queued_stream.finish("the queued answer")
    await clock.run_until(first, second)
    await outbox.close()


async def test_each_final_answer_supersedes_only_its_own_frames(clock, bot):
    outbox, a_stream, b_stream = Outbox(PRIVATE, clock=clock), Stream(), Stream()
    a, b = view_in(bot, outbox), view_in(bot, outbox)
    views = [asyncio.ensure_future(v.run(s.events())) for v, s in ((a, a_stream), (b, b_stream))]
    await clock.run_until(shown(bot, "send_message_draft", ""))

    b_stream.push(TextDelta("b is streaming"))
    a_stream.finish("a is done")
    await clock.run_until(views[0], shown(bot, "send_message_draft", "b is streaming"))

    a_final = next(c for c in bot.to("send_message") if c.text == "a is done")
    drafts_after = [c for c in bot.calls[bot.calls.index(a_final) :] if c.method == "send_message_draft"]
    assert {c.params["draft_id"] for c in drafts_after} == {b.draft_id}  # a's frames went, b's still come
    b_stream.finish("b is done")
    await clock.run_until(views[1])
    await outbox.close()


async def test_a_group_gets_a_preview_that_is_edited_then_deleted_and_the_answer_in_full(clock, bot):
    outbox, stream = Outbox(GROUP, clock=clock), Stream()
    view = view_in(bot, outbox)
    running = asyncio.ensure_future(view.run(stream.events()))

    stream.push(TextDelta("first words"))
    await clock.run_until(shown(bot, "send_message", "first words"))
    stream.push(TextDelta(" and more"))
    await clock.run_until(shown(bot, "edit_message_text", "first words and more"))
    stream.finish("first words and more, finished")
    await clock.run_until(running)

    assert not bot.to("send_message_draft")
    assert [c.text for c in bot.to("send_message")][-1] == "first words and more, finished"
    assert bot.to("delete_message")[0].params["message_id"] == 1  # the preview
    await outbox.close()
