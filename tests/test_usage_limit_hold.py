"""The usage limit through the SessionManager with fake processes and a fake clock: said once per place, the line
held, the refused message resent after the reset, Cancel, a restart in the middle, and API-key 429s untouched."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

import pytest

from claude_bridge.commands.core import Commands
from claude_bridge.protocol.events import AssistantText, LimitText, TurnResult, parse_event
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.limit_keeper import LimitKeeper
from claude_bridge.sessions.limits import HoldState
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.usage import UsageBook
from fake_process import FakeClock, FakeSpawner, Shown, base_options, drain, result_of

pytestmark = pytest.mark.fast

PRIVATE, GROUP = Place(1), Place(-100, 7)
HOUR = 3600.0


def make(tmp_path: Path, clock: FakeClock, shown: Shown, spawner: FakeSpawner | None = None) -> SessionManager:
    return SessionManager(
        tmp_path / "sessions", spawn=spawner or FakeSpawner(), base_options=base_options(tmp_path),
        clock=clock, front_end=shown, limit_margin=30,
    )  # fmt: skip


def refused(clock: FakeClock, after: float = HOUR, event: bool = True) -> list[object]:
    """One turn the limit refuses, as the CLI ends it (§17); the rejected event only marks a change."""
    text = "You've hit your 5-hour limit · resets 11:36pm (UTC)"
    limit = [RateLimit("rejected", resets_at=clock.now + after, limit_type="five_hour")] if event else []
    return [*limit, LimitText(text), TurnResult("success", True, text, api_error_status=429)]


async def first_refused(
    tmp_path: Path,
) -> tuple[FakeClock, Shown, FakeSpawner, SessionManager, asyncio.Task[list[object]]]:
    """A manager whose private chat's "first" the limit refused (its limit message shown); the task drains it."""
    clock, shown, spawner = FakeClock(), Shown(), FakeSpawner()
    manager = make(tmp_path, clock, shown, spawner)
    spawner.enqueue(refused(clock))
    first = asyncio.create_task(drain(await manager.send(PRIVATE, "first")))
    await shown.limit_shown.get()
    return clock, shown, spawner, manager, first


def test_the_clis_refusal_text_is_never_read_as_claudes_answer():
    synthetic = {"type": "assistant", "error": "rate_limit", "parent_tool_use_id": None, "message": {
        "model": "<synthetic>", "content": [{"type": "text", "text": "You've hit your 5-hour limit"}]}}

    assert parse_event(synthetic) == (LimitText("You've hit your 5-hour limit"),)


async def test_a_refused_message_is_said_once_held_and_answered_after_the_reset_with_the_other_places(tmp_path):
    clock, shown, spawner = FakeClock(), Shown(), FakeSpawner()
    manager = make(tmp_path, clock, shown, spawner)
    spawner.enqueue(refused(clock))
    first = asyncio.create_task(drain(await manager.send(PRIVATE, "first")))
    place, hold, edited = await shown.limit_shown.get()
    assert (place, hold.state, hold.until, edited) == (PRIVATE, HoldState.HELD, clock.now + HOUR, None)

    second = asyncio.create_task(drain(await manager.send(GROUP, "second")))
    place, _, _ = await shown.limit_shown.get()  # the group holds a message too: it gets its own limit message
    assert place == GROUP and manager.limits.held(manager.active_session(GROUP)) is not None
    assert [p.received for p in spawner.started] == [["first"]]  # "second" was not sent to be refused

    clock.advance(HOUR + 30)
    await manager.limits.resume_held(clock.now)
    first_events, second_events = await first, await second

    assert AssistantText("echo: first") in first_events and not result_of(first_events).is_error
    assert not any(isinstance(e, AssistantText) and "hit your" in e.text for e in first_events)  # not an answer
    assert AssistantText("echo: second") in second_events
    assert spawner.started[0].received == ["first", "first"]  # the refused message, sent again
    edits = [(p, h.state) for p, h, message_id in shown.limits if message_id is not None]
    assert sorted(edits, key=str) == sorted([(PRIVATE, HoldState.NONE), (GROUP, HoldState.NONE)], key=str)
    assert manager.limits.hold.state is HoldState.NONE
    await manager.close_all()


async def test_refused_again_after_the_reset_waits_for_the_new_time_editing_the_same_message(tmp_path):
    clock, shown, spawner, manager, first = await first_refused(tmp_path)

    clock.advance(HOUR + 30)
    spawner.enqueue(refused(clock, after=2 * HOUR))
    await manager.limits.resume_held(clock.now)
    await shown.limit_shown.get()  # "carrying on"
    _, hold, message_id = await shown.limit_shown.get()  # refused again: the same message, the new time
    assert (hold.state, hold.until, message_id) == (HoldState.HELD, clock.now + 2 * HOUR, 501)
    assert not first.done()

    clock.advance(2 * HOUR + 30)
    await manager.limits.resume_held(clock.now)
    assert AssistantText("echo: first") in await first
    await manager.close_all()


async def test_cancel_resends_nothing_by_itself_and_the_next_message_releases_the_held_ones(tmp_path):
    clock, shown, spawner, manager, first = await first_refused(tmp_path)

    reply = await Commands(manager).run(PRIVATE, "/limit cancel")
    _, hold, message_id = await shown.limit_shown.get()
    assert "Cancelled" in reply.text and (hold.state, message_id) == (HoldState.CANCELLED, 501)
    clock.advance(HOUR + 30)
    await manager.limits.resume_held(clock.now)
    other = await drain(await manager.send(GROUP, "elsewhere"))  # another session is not held by the Cancel
    assert AssistantText("echo: elsewhere") in other
    assert not first.done() and spawner.started[0].received == ["first"]

    later = await manager.send(PRIVATE, "later")
    assert AssistantText("echo: first") in await first
    assert AssistantText("echo: later") in await drain(later)
    await manager.close_all()


async def test_the_hold_and_the_refused_message_survive_a_restart(tmp_path):
    clock, _shown, _spawner, manager, first = await first_refused(tmp_path)
    await manager.close_all()
    await first

    again, spawner2 = Shown(), FakeSpawner()
    restarted = make(tmp_path, clock, again, spawner2)
    (redelivered,) = await restarted.recover()
    assert restarted.limits.held("default") is not None and spawner2.started == []  # still held: nothing sent yet

    clock.advance(HOUR + 30)
    await restarted.limits.resume_held(clock.now)
    assert AssistantText("echo: first") in await drain(redelivered)
    assert (PRIVATE, HoldState.NONE, 501) in [(p, h.state, m) for p, h, m in again.limits]  # the old message edited
    await restarted.close_all()


async def test_an_api_key_429_is_an_ordinary_error_and_holds_nothing(tmp_path):
    clock, shown, spawner = FakeClock(), Shown(), FakeSpawner()
    manager = make(tmp_path, clock, shown, spawner)
    spawner.enqueue(refused(clock, event=False))

    result = result_of(await drain(await manager.send(PRIVATE, "first")))

    assert result.is_error and result.api_error_status == 429
    assert manager.limits.held("default") is None and shown.limits == []
    await manager.close_all()


async def test_a_warning_is_shown_once_per_window_and_usage_reports_it(tmp_path):
    clock, shown, spawner = FakeClock(), Shown(), FakeSpawner()
    manager = make(tmp_path, clock, shown, spawner)
    warning = RateLimit("allowed_warning", resets_at=clock.now + HOUR, limit_type="five_hour", utilization=0.9)
    spawner.enqueue([warning, AssistantText("one")], [warning, AssistantText("two")])

    await drain(await manager.send(PRIVATE, "a"))
    await drain(await manager.send(GROUP, "b"))

    assert [place for place, _ in shown.warnings] == [PRIVATE]
    usage = (await Commands(manager, clock=clock).run(PRIVATE, "/usage")).text
    assert "default: last turn $0.0100" in usage and "90% of its 5-hour limit" in usage
    await manager.close_all()


async def test_a_place_gets_one_limit_message_when_two_paths_show_it_at_once(tmp_path):
    class SlowToSend(Shown):
        async def show_limit(self, place: Place, hold: object, message_id: int | None) -> int | None:
            await asyncio.sleep(0)  # a send awaits Telegram: the other path comes in meanwhile
            return await super().show_limit(place, hold, message_id)  # type: ignore[arg-type]

    clock, shown = FakeClock(), SlowToSend()
    keeper = LimitKeeper(tmp_path, shown, UsageBook(UTC), clock=lambda: clock.now)
    keeper.plan.refused("default", "e1", RateLimit("rejected", resets_at=clock.now + HOUR), clock.now)

    await asyncio.gather(keeper.accepted("group", GROUP), keeper.accepted("group", GROUP))

    assert [place for place, _, _ in shown.limits] == [GROUP]


async def test_usage_shows_a_place_only_its_own_sessions_and_todays_totals_survive_a_restart(tmp_path):
    clock, shown = FakeClock(), Shown()
    manager = make(tmp_path, clock, shown)
    await drain(await manager.send(PRIVATE, "mine"))
    await drain(await manager.send(GROUP, "ours"))
    await drain(await manager.send(GROUP, "ours again"))
    await manager.close_all()

    restarted = make(tmp_path, clock, Shown())
    commands = Commands(restarted, clock=clock)
    private = (await commands.usage(PRIVATE, [])).text.splitlines()
    group = (await commands.usage(GROUP, [])).text.splitlines()

    private_session, group_session = restarted.active_session(PRIVATE), restarted.active_session(GROUP)
    assert [line.split(":")[0] for line in private if line.startswith("•")] == [f"• {private_session}"]
    assert [line.split(":")[0] for line in group if line.startswith("•")] == [f"• {group_session}"]
    assert "in 1 turn" in private[0] and "in 2 turns" in group[0]
    await restarted.close_all()


async def test_a_cancel_is_its_places_own_the_other_place_still_goes_on_at_the_reset(tmp_path):
    clock, shown, spawner, manager, first = await first_refused(tmp_path)
    second = asyncio.create_task(drain(await manager.send(GROUP, "second")))
    await shown.limit_shown.get()

    reply = await Commands(manager).run(GROUP, "/limit cancel")
    place, hold, message_id = await shown.limit_shown.get()
    assert "Cancelled" in reply.text and (place, hold.state, message_id) == (GROUP, HoldState.CANCELLED, 502)
    assert manager.limits.hold.state is HoldState.HELD  # the private chat's message still waits for the reset
    assert "Nothing here" in (await Commands(manager).run(GROUP, "/limit cancel")).text

    clock.advance(HOUR + 30)
    await manager.limits.resume_held(clock.now)
    assert AssistantText("echo: first") in await first
    edits = [(p, h.state) for p, h, m in shown.limits if m is not None]
    assert (PRIVATE, HoldState.NONE) in edits and (GROUP, HoldState.NONE) not in edits  # the group's stays Cancelled
    assert not second.done() and all("second" not in p.received for p in spawner.started)

    again = await manager.send(GROUP, "again")  # the group's user writes: its held message goes first, at once
    assert AssistantText("echo: second") in await second
    assert AssistantText("echo: again") in await drain(again)
    await manager.close_all()


async def test_a_cancelled_message_stays_cancelled_when_another_place_is_refused_later(tmp_path):
    clock, shown, spawner, manager, first = await first_refused(tmp_path)
    await Commands(manager).run(PRIVATE, "/limit cancel")
    await shown.limit_shown.get()  # "Cancelled"

    spawner.enqueue(refused(clock, after=2 * HOUR))  # the group tries (nothing holds it) and is refused anew
    in_group = asyncio.create_task(drain(await manager.send(GROUP, "in the group")))
    place, hold, _ = await shown.limit_shown.get()
    assert (place, hold.state) == (GROUP, HoldState.HELD)

    clock.advance(2 * HOUR + 30)
    await manager.limits.resume_held(clock.now)
    assert AssistantText("echo: in the group") in await in_group
    assert not first.done() and all(p.received.count("first") == 1 for p in spawner.started if "first" in p.received)
    await manager.send(PRIVATE, "now")
    assert AssistantText("echo: first") in await first
    await manager.close_all()
