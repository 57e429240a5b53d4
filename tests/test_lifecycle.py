"""A session's one state (sessions/lifecycle.py): its moves, what metadata.json says of it, and Session.close()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import TurnResult
from claude_bridge.sessions.claude_turns import ClaudeTurns
from claude_bridge.sessions.lifecycle import IllegalMove, Lifecycle, checked, from_disk, to_disk
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.store import MetaStatus, Persona
from claude_bridge.sessions.worker import Delivery
from fake_process import FakeClock, FakeSpawner, Shown, base_options, drain, result_of

pytestmark = pytest.mark.fast

PERSONAS = {"default": Persona("default", "plain", ""), "poet": Persona("poet", "rhymes", "Answer in rhyme.")}


def make_manager(tmp_path: Path, shown: Shown | None = None) -> tuple[SessionManager, FakeSpawner]:
    spawner = FakeSpawner()
    manager = SessionManager(
        tmp_path / "sessions",
        spawn=spawner,
        base_options=base_options(tmp_path),
        personas=dict(PERSONAS),
        clock=FakeClock(),
        front_end=shown,
    )
    return manager, spawner


def status_on_disk(tmp_path: Path, name: str = "default") -> str:
    meta = json.loads((tmp_path / f"sessions/.bot/sessions/{name}/metadata.json").read_text())
    return str(meta["status"])


def test_a_session_loads_without_a_process_whatever_the_last_run_left():
    assert from_disk(MetaStatus.LIVE) is Lifecycle.SUSPENDED
    assert from_disk(MetaStatus.FAILED) is Lifecycle.FAILED and from_disk(MetaStatus.NEW) is Lifecycle.NEW
    assert {to_disk(state) for state in Lifecycle} <= set(MetaStatus)  # only words older versions wrote


def test_a_deleted_or_damaged_session_never_starts():
    for state in (Lifecycle.DELETED, Lifecycle.DAMAGED):
        with pytest.raises(IllegalMove):
            checked(state, Lifecycle.STARTING)


async def test_new_settings_leave_a_live_session_restart_due_until_the_next_message(tmp_path):
    manager, spawner = make_manager(tmp_path)
    await drain(await manager.send(1, "hello"))

    await manager.set_persona("default", "poet")

    assert manager.status("default").state == "live" and status_on_disk(tmp_path) == "live"
    events = await drain(await manager.send(1, "again"))
    assert any("Restarting" in getattr(event, "text", "") for event in events)
    assert spawner.started[0].stopped and "Answer in rhyme." in (spawner.started[1].options.append_system_prompt or "")
    await manager.close_all()
    assert status_on_disk(tmp_path) == "stopped"


async def test_close_ends_claudes_own_turn_with_its_process_and_writes_the_books(tmp_path):
    shown = Shown()
    manager, spawner = make_manager(tmp_path, shown)
    await drain(await manager.send(1, "start the tests in the background"))
    spawner.started[0].begin_claude_turn("Background task finished")
    [view] = shown.claude_turns

    await manager.close_all()

    assert result_of(await drain(view)).is_error and spawner.started[0].stopped
    assert status_on_disk(tmp_path) == "stopped"


async def test_claudes_own_turns_are_tasks_their_owner_ends_even_if_the_turn_never_does():
    turns, turn = ClaudeTurns("s", _result_of_turn, after_each=_nothing), Turn.by_claude("Background task finished")
    view = Delivery.of_claude_turn("s", Place(1), turn)
    turns.follow(turn, view, book=lambda result: None)

    await turns.close(timeout=0)

    assert turns.running == 0 and "shutting down" in result_of(await drain(view)).text


async def _nothing() -> None:
    pass


async def _result_of_turn(turn: Turn, place: Place) -> TurnResult:
    await turn.done.wait()
    assert turn.result is not None
    return turn.result
