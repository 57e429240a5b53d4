"""A message's one line: it takes its place on arrival (SessionManager.reserve), its content may follow later, and
its Delivery is the view of its Turn (read from the turn, not copied)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import AssistantText, TextDelta, TurnResult
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.store import Persona
from claude_bridge.sessions.worker import Delivery, failure
from fake_process import FakeClock, FakeSpawner, base_options, drain, result_of

pytestmark = pytest.mark.fast


def make_manager(tmp_path: Path) -> tuple[SessionManager, FakeSpawner]:
    spawner = FakeSpawner()
    manager = SessionManager(
        tmp_path / "sessions",
        spawn=spawner,
        base_options=base_options(tmp_path),
        personas={"default": Persona("default", "plain", "")},
        clock=FakeClock(),
    )
    return manager, spawner


def inbox_contents(tmp_path: Path, name: str = "default") -> list[str]:
    lines = (tmp_path / f"sessions/.bot/sessions/{name}/inbox.jsonl").read_text().splitlines()
    return [record["content"] for record in map(json.loads, lines) if record["op"] == "add"]


async def test_a_text_sent_while_a_voice_note_is_transcribed_reaches_claude_and_the_inbox_after_it(tmp_path):
    manager, spawner = make_manager(tmp_path)
    spawner.enqueue(["hold"])
    running = await manager.send(1, "busy")
    voice, text = manager.reserve(1), manager.reserve(1)  # both arrived; the voice note is still being transcribed

    await asyncio.gather(manager.accept(text, "typed after it"), manager.accept(voice, "🎤 the voice note"))

    assert inbox_contents(tmp_path) == ["busy", "🎤 the voice note", "typed after it"]
    spawner.release.set()
    for delivery in (running, voice, text):
        await drain(delivery)
    assert spawner.started[0].received == ["busy", "🎤 the voice note", "typed after it"]
    await manager.close_all()


async def test_a_message_that_never_came_gives_its_place_up(tmp_path):
    manager, spawner = make_manager(tmp_path)
    with manager.in_line(1):  # a download that failed: nothing is accepted
        later = manager.reserve(1)

    async with asyncio.timeout(5):  # a place never given up would hold the line for good
        answer = result_of(await drain(await manager.accept(later, "still answered")))

    assert answer.text == "ok" and spawner.started[0].received == ["still answered"]
    assert manager.status("default").queued == 0
    await manager.close_all()


async def test_another_sessions_chat_is_not_held_by_a_note_being_prepared(tmp_path):
    manager, spawner = make_manager(tmp_path)
    manager.create("other")
    manager.switch(2, "other")
    with manager.in_line(1):
        answer = result_of(await drain(await manager.send(2, "from the group")))

    assert not answer.is_error and spawner.started[0].received == ["from the group"]
    await manager.close_all()


async def test_every_reader_of_a_turn_sees_every_event():
    turn = Turn("hi")
    readers = [asyncio.ensure_future(_all(turn)) for _ in range(2)]
    for event in (TextDelta("h"), AssistantText("hi"), TurnResult("success", False, "hi", "s")):
        turn.push(event)

    first, second = await asyncio.gather(*readers)

    assert first == second == list(turn.history) and len(first) == 3


async def test_a_delivery_shows_its_turns_events_and_ends_with_its_own_result():
    turn, delivery = Turn("hi"), Delivery("s", 1, "hi", "e1", 0)
    delivery.notice("Restarting…")
    delivery.follow(turn)
    turn.push(AssistantText("half an answer"))

    delivery.finish(failure("cut off"))  # e.g. the bot shuts down while the turn still runs
    turn.push(AssistantText("never shown"))
    events = await drain(delivery)

    assert [type(e).__name__ for e in events] == ["Notice", "AssistantText", "TurnResult"]
    assert events[1] is turn.history[0] and result_of(events).text == "cut off"


async def _all(turn: Turn) -> list[object]:
    return [event async for event in turn.events()]


async def test_a_message_sent_again_after_the_usage_limit_shows_both_turns_in_order():
    refused, again, delivery = Turn("hi"), Turn("hi"), Delivery("s", 1, "hi", "e1", 0)
    delivery.follow(refused)
    refused.push(AssistantText("You've hit your limit"))
    refused.push(TurnResult("success", True, "You've hit your limit", "s"))
    delivery.follow(again)  # after the reset
    again.push(AssistantText("hello"))
    again.push(TurnResult("success", False, "hello", "s"))

    delivery.finish(again.result or failure("none"))
    events = await drain(delivery)

    assert events[:2] == [AssistantText("You've hit your limit"), AssistantText("hello")]
    assert result_of(events).text == "hello" and len(events) == 3
