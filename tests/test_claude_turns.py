"""Turns Claude starts by itself, at the sessions and command layers (fake process, fake clock): where they go,
what they count for the queue, and how background work keeps a session alive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_bridge.commands.core import MAX_CALLBACK_BYTES, Commands
from claude_bridge.commands.wording import claude_turn_header
from claude_bridge.errors import SessionError
from claude_bridge.protocol.events import AssistantText, TaskInfo, TurnResult
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.store import Persona
from claude_bridge.sessions.worker import Delivery, Notice
from fake_process import FakeClock, FakeProcess, FakeSpawner, Shown, base_options, drain, result_of

pytestmark = pytest.mark.fast

HEADER = 'Background command "pytest -q" completed (exit code 0)'


def make_manager(tmp_path: Path, **kwargs: object) -> tuple[SessionManager, FakeSpawner, FakeClock, list[Delivery]]:
    spawner, clock, shown = FakeSpawner(), FakeClock(), Shown()
    manager = SessionManager(
        tmp_path / "sessions",
        spawn=spawner,
        base_options=base_options(tmp_path),
        clock=clock,
        idle_after=600,
        front_end=kwargs.pop("front_end", shown),
        **kwargs,  # type: ignore[arg-type]
    )
    return manager, spawner, clock, shown.claude_turns


async def test_claudes_own_turn_reaches_the_last_chat_with_its_header_and_is_booked(tmp_path):
    manager, spawner, _, shown = make_manager(tmp_path)
    await drain(await manager.send(7, "start the tests in the background"))
    process = spawner.started[0]

    turn = process.begin_claude_turn(HEADER)
    turn.push(AssistantText("all 12 tests passed"))
    turn.push(TurnResult("success", False, "all 12 tests passed", "conv-default", cost_usd=0.02))
    [delivery] = shown
    events = await drain(delivery)

    assert delivery.chat_id == 7 and delivery.session == "default" and delivery.header == HEADER
    assert AssistantText("all 12 tests passed") in events and result_of(events).text == "all 12 tests passed"
    meta = json.loads((tmp_path / "sessions/.bot/sessions/default/metadata.json").read_text())
    assert meta["turns"] == 2 and meta["total_cost_usd"] >= 0.02 and meta["last_chat_id"] == 7
    await manager.close_all()


async def test_claudes_own_turn_counts_in_usage_in_its_place_and_the_count_survives_a_restart(tmp_path):
    manager, spawner, clock, shown = make_manager(tmp_path)
    await drain(await manager.send(7, "start the tests in the background"))
    await drain(await manager.send(Place(-100, 3), "a group's own question"))
    turn = spawner.started[0].begin_claude_turn(HEADER)
    turn.push(TurnResult("success", False, "all 12 tests passed", "conv-default", cost_usd=0.25))
    await drain(shown[0])
    await manager.close_all()

    again, _, _, _ = make_manager(tmp_path)
    private = (await Commands(again, clock=clock).run(7, "/usage")).text
    group = (await Commands(again, clock=clock).run(Place(-100, 3), "/usage")).text

    meta = json.loads((tmp_path / "sessions/.bot/sessions/default/metadata.json").read_text())
    assert meta["usage"]["today_turns"] == 2 and meta["usage"]["last_cost_usd"] == 0.25
    assert "in 2 turns" in private and "default: last turn $0.2500" in private
    assert "default" not in group and "in 1 turn" in group
    await again.close_all()


async def test_the_last_chat_and_the_home_are_remembered_across_a_restart(tmp_path):
    manager, _, _, _ = make_manager(tmp_path)
    await drain(await manager.send(7, "hello"))
    await manager.close_all()

    again, _, _, _ = make_manager(tmp_path)
    with pytest.raises(SessionError, match="no session named “default” here"):
        again.switch(9, "default")  # another person's chat does not reach it

    assert again._get("default").last_place == Place(7) and again._get("default").home == Place(7)
    await again.close_all()


async def test_a_message_sent_during_claudes_turn_is_queued_behind_it_and_answered_by_its_own_turn(tmp_path):
    manager, spawner, _, shown = make_manager(tmp_path)
    await drain(await manager.send(7, "hello"))
    turn = spawner.started[0].begin_claude_turn(HEADER)

    mine = await manager.send(7, "what is 2+2?")
    assert mine.position == 1  # Claude's own turn runs ahead of it
    assert spawner.started[0].received == ["hello"]  # not written into Claude's turn
    turn.push(TurnResult("success", False, "follow-up"))

    assert result_of(await drain(shown[0])).text == "follow-up"
    events = await drain(mine)
    assert AssistantText("echo: what is 2+2?") in events and result_of(events).text == "ok"
    await manager.close_all()


async def test_running_background_tasks_keep_a_session_from_idle_suspension_and_lru(tmp_path):
    manager, spawner, clock, _ = make_manager(tmp_path, max_live=1)
    await drain(await manager.send(7, "start a long build"))
    spawner.started[0].tasks["b1"] = TaskInfo("b1", "long build", "local_bash")

    clock.advance(3600)
    assert await manager.suspend_idle() == []
    manager.create("other")
    manager.switch(8, "other")
    waiting = await manager.send(8, "hello other")
    first = await anext(waiting.events())
    assert isinstance(first, Notice) and "busy" in first.text  # the session with a running task is no LRU victim

    await manager.stop_task("default", "b1")

    assert result_of(await drain(waiting)).text == "ok"
    assert spawner.started[0].stopped and manager.status("default").state == "suspended"
    await manager.close_all()


async def test_claudes_running_turn_keeps_a_session_from_idle_suspension(tmp_path):
    manager, spawner, clock, shown = make_manager(tmp_path)
    await drain(await manager.send(7, "hello"))
    turn = spawner.started[0].begin_claude_turn(HEADER)

    clock.advance(3600)
    assert await manager.suspend_idle() == []
    assert manager.status("default").state == "busy"

    turn.push(TurnResult("success", False, "done"))
    await drain(shown[0])
    clock.advance(3600)
    assert await manager.suspend_idle() == ["default"]
    await manager.close_all()


async def test_no_idle_suspension_between_a_tasks_end_and_claudes_turn_that_reports_it(tmp_path):
    manager, spawner, clock, shown = make_manager(tmp_path)
    await drain(await manager.send(7, "start a long build"))
    process = spawner.started[0]
    process.tasks["b1"] = TaskInfo("b1", "long build", "local_bash")
    clock.advance(3600)

    process.end_task("b1")  # the CLI is about to start Claude's turn about it

    assert await manager.suspend_idle() == [] and not process.stopped
    turn = process.begin_claude_turn(HEADER)
    turn.push(TurnResult("success", False, "the build passed"))
    assert result_of(await drain(shown[0])).text == "the build passed"
    await manager.close_all()


async def test_a_restart_for_new_settings_waits_for_claudes_own_turn_as_a_message_does(tmp_path):
    personas = {"default": Persona("default", "", ""), "reviewer": Persona("reviewer", "", "Review.")}
    manager, spawner, _, shown = make_manager(tmp_path, personas=personas)
    await drain(await manager.send(7, "hello"))
    first = spawner.started[0]
    turn = first.begin_claude_turn(HEADER)
    await manager.set_persona("default", "reviewer")  # a restart is due before the next message

    mine = await manager.send(7, "review it")
    notice = await anext(mine.events())

    assert isinstance(notice, Notice) and "Restarting" in notice.text
    assert not first.stopped  # Claude's own turn runs on
    turn.push(TurnResult("success", False, "tests pass"))
    assert result_of(await drain(shown[0])).text == "tests pass"
    assert result_of(await drain(mine)).text == "ok"
    assert first.stopped and spawner.started[1].received == ["review it"]
    await manager.close_all()


async def test_stopping_a_session_with_running_tasks_tells_its_last_chat_which_were_stopped(tmp_path):
    front_end = Shown()
    told = front_end.told
    manager, spawner, _, _ = make_manager(tmp_path, front_end=front_end)
    await drain(await manager.send(7, "start it"))
    spawner.started[0].tasks["b1"] = TaskInfo("b1", "nightly backup", "local_bash")

    await manager.close_all()

    assert told == [(Place(7), told[0][1])] and "nightly backup" in told[0][1] and "stopped" in told[0][1]


async def test_tasks_lists_running_tasks_with_a_stop_choice_each_and_stops_one(tmp_path):
    manager, spawner, _, _ = make_manager(tmp_path)
    commands = Commands(manager)
    await drain(await manager.send(7, "start two"))
    process: FakeProcess = spawner.started[0]
    long_id = "x" * 80
    process.tasks = {"b1": TaskInfo("b1", "pytest -q", "local_bash"), long_id: TaskInfo(long_id, "a very long one")}

    listing = await commands.run(7, "/tasks")
    status = await commands.run(7, "/status")
    assert "pytest -q" in listing.text and "pytest -q" in status.text
    assert listing.choices[0].command == "/tasks stop b1"
    assert all(len(c.command.encode()) <= MAX_CALLBACK_BYTES for c in listing.choices)

    stopped = await commands.run(7, listing.choices[1].command)  # a cut id still names its task
    assert "a very long one" in stopped.text and process.stopped_tasks == [long_id]
    assert "No background tasks" not in (await commands.run(7, "/tasks")).text
    await commands.run(7, "/tasks stop b1")
    assert "No background tasks" in (await commands.run(7, "/tasks")).text
    await manager.close_all()


def test_the_header_says_what_started_claudes_turn_and_names_a_session_nobody_looks_at():
    assert claude_turn_header(HEADER) == "🔔 Background task finished: `pytest -q`"
    failed = claude_turn_header('Background command "make" failed (exit code 2)', "build")
    assert failed == "🔔 Background task failed (exit code 2): `make` — session “build”"
    assert claude_turn_header("Claude continued on its own") == "🔔 Claude continued on its own"
