"""SessionManager with a fake process and a fake clock: names, personas, models, idle suspend, the cap, the inbox."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_bridge.errors import SessionError
from claude_bridge.protocol.events import AssistantText, TurnResult
from claude_bridge.sessions.inbox import EntryState, Inbox
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.store import Persona, load_personas, validate_name
from claude_bridge.sessions.worker import Delivery, Notice
from fake_process import FakeClock, FakeSpawner, Shown, base_options, drain, result_of

pytestmark = pytest.mark.fast

PERSONAS = {
    "default": Persona("default", "plain", ""),
    "poet": Persona("poet", "rhymes", "Answer in rhyme.", model="opus", max_turns=3, permission_mode="plan"),
}


def make_manager(tmp_path: Path, **kwargs: object) -> tuple[SessionManager, FakeSpawner, FakeClock]:
    spawner, clock = FakeSpawner(), FakeClock()
    manager = SessionManager(
        tmp_path / "sessions",
        spawn=spawner,
        base_options=base_options(tmp_path),
        personas=dict(PERSONAS),
        clock=clock,
        idle_after=600,
        **kwargs,  # type: ignore[arg-type]
    )
    return manager, spawner, clock


async def test_first_message_creates_and_announces_the_default_session(tmp_path):
    manager, _spawner, _ = make_manager(tmp_path)

    events = await drain(await manager.send(1, "hello"))

    assert isinstance(events[0], Notice) and "default" in events[0].text
    assert AssistantText("echo: hello") in events
    assert manager.active_session(1) == "default"
    meta = json.loads((tmp_path / "sessions/.bot/sessions/default/metadata.json").read_text())
    assert meta["turns"] == 1 and meta["claude_session_id"] == "conv-default"
    assert (tmp_path / "sessions/default/files").is_dir()
    await manager.close_all()


async def test_idle_session_is_suspended_then_resumed_with_continue(tmp_path):
    manager, spawner, clock = make_manager(tmp_path)
    await drain(await manager.send(1, "hello"))

    clock.advance(599)
    assert await manager.suspend_idle() == []
    clock.advance(2)
    assert await manager.suspend_idle() == ["default"]

    assert spawner.started[0].stopped
    assert manager.status("default").state == "suspended"
    await drain(await manager.send(1, "again"))
    assert len(spawner.started) == 2
    assert not spawner.started[0].continued and spawner.started[1].continued
    await manager.close_all()


async def test_busy_session_is_never_suspended(tmp_path):
    manager, spawner, clock = make_manager(tmp_path)
    spawner.enqueue(["hold"])
    delivery = await manager.send(1, "long job")
    await anext(aiter(delivery.events()))  # the notice: the turn is under way

    clock.advance(10_000)
    assert await manager.suspend_idle() == []

    spawner.release.set()
    await drain(delivery)
    await manager.close_all()


async def test_cap_suspends_the_least_recently_used_idle_session(tmp_path):
    manager, spawner, clock = make_manager(tmp_path, max_live=2)
    for chat, name in ((1, "a"), (2, "b"), (3, "c")):
        manager.create(name)
        manager.switch(chat, name)
    await drain(await manager.send(1, "to a"))
    clock.advance(5)
    await drain(await manager.send(2, "to b"))
    clock.advance(5)

    await drain(await manager.send(3, "to c"))

    a, b, c = spawner.started
    assert a.stopped and not b.stopped and not c.stopped
    assert manager.status("a").state == "suspended"
    await manager.close_all()


async def test_cap_with_every_session_busy_waits_and_says_why(tmp_path):
    manager, spawner, _ = make_manager(tmp_path, max_live=1)
    manager.create("a"), manager.switch(1, "a")
    manager.create("b"), manager.switch(2, "b")
    spawner.enqueue(["hold"])
    first = await manager.send(1, "busy")

    second = await manager.send(2, "waiting")
    stream = aiter(second.events())
    notice = await anext(stream)
    assert isinstance(notice, Notice) and "busy" in notice.text

    spawner.release.set()
    await drain(first)
    rest = [event async for event in stream]
    assert AssistantText("echo: waiting") in rest
    await manager.close_all()


async def test_persona_and_model_precedence(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    manager.create("verse", "poet")
    manager.switch(1, "verse")
    await drain(await manager.send(1, "hi"))
    options = spawner.started[0].options
    assert options.model == "opus" and (options.append_system_prompt or "").startswith("Answer in rhyme.\n\n")
    assert options.max_turns == 3 and options.permission_mode == "plan"

    await manager.set_model("verse", "haiku")
    assert spawner.started[0].models[-1] == "haiku"  # applied to the live process at once
    assert manager.effective_model("verse") == "haiku"

    await manager.set_model("verse", None)
    assert manager.effective_model("verse") == "opus"
    await manager.close_all()


async def test_model_override_survives_suspend_and_restart(tmp_path):
    manager, _spawner, _clock = make_manager(tmp_path)
    await drain(await manager.send(1, "hi"))
    await manager.set_model("default", "claude-haiku-4-5-20251001")
    await manager.close_all()

    again, spawner2, _ = make_manager(tmp_path)
    await drain(await again.send(1, "back"))
    assert spawner2.started[0].options.model == "claude-haiku-4-5-20251001"
    assert spawner2.started[0].continued
    await again.close_all()


async def test_switching_persona_restarts_the_process_before_the_next_turn(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    await drain(await manager.send(1, "hi"))

    await manager.set_persona("default", "poet")
    events = await drain(await manager.send(1, "now rhyme"))

    assert spawner.started[0].stopped
    assert spawner.started[1].options.append_system_prompt.startswith("Answer in rhyme.\n\n")
    assert spawner.started[1].continued
    assert any(isinstance(e, Notice) and "Restarting" in e.text for e in events)
    await manager.close_all()


@pytest.mark.parametrize("bad", ["", "UPPER", "-lead", "a" * 33, "../etc", "a/b", "a b", "a_b", "ü"])
def test_bad_names_are_refused_with_the_rule(bad):
    with pytest.raises(SessionError, match="1–32 characters"):
        validate_name(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=40) | st.sampled_from(["..", ".", "../x", "/etc", "a/../..", "link", "ok-name"]))
def test_nothing_is_ever_created_outside_the_sessions_dir(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("prop")
    sessions = root / "sessions"
    sessions.mkdir()
    (sessions / "link").symlink_to(root)  # a symlink inside must not lead outside
    manager = SessionManager(sessions, spawn=FakeSpawner(), base_options=base_options(root), personas=dict(PERSONAS))
    before = {p for p in root.rglob("*") if not p.is_relative_to(sessions)}

    try:
        manager.create(name)
        manager.switch(7, name)
    except SessionError:
        pass

    after = {p for p in root.rglob("*") if not p.is_relative_to(sessions)}
    assert after == before
    for path in sessions.iterdir():
        assert path.resolve().parent == sessions.resolve() or path.is_symlink()


async def test_delete_is_refused_while_busy_and_removes_the_directory_after_stop(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    spawner.enqueue(["hold"])
    delivery = await manager.send(1, "work")
    stream = aiter(delivery.events())
    await anext(stream)

    with pytest.raises(SessionError, match="busy"):
        await manager.delete("default")
    spawner.release.set()
    [event async for event in stream]
    await manager.delete("default")

    assert spawner.started[0].stopped
    assert not (tmp_path / "sessions/default").exists()
    assert manager.active_session(1) is None
    await manager.close_all()


async def test_corrupt_metadata_marks_only_that_session_damaged_until_it_is_repaired(tmp_path, caplog):
    manager, _spawner, _ = make_manager(tmp_path)
    manager.create("work")
    manager.create("other")
    metadata = tmp_path / "sessions/.bot/sessions/work/metadata.json"
    good = metadata.read_text()
    metadata.write_text("{not json")

    again, _spawner2, _ = make_manager(tmp_path)
    again.switch(1, "work")
    with pytest.raises(SessionError, match=r"damaged: metadata\.json: Expecting property name"):
        await again.send(1, "still here?")
    assert again.status("work").damage.startswith("damaged: metadata.json: ")
    again.switch(2, "other")
    assert not result_of(await drain(await again.send(2, "fine?"))).is_error
    assert metadata.read_text() == "{not json"  # never overwritten by a stand-in

    metadata.write_text(good)  # repaired by hand: the next message works
    assert not result_of(await drain(await again.send(1, "back?"))).is_error
    await again.close_all()


def test_invalid_persona_files_are_reported_and_skipped(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps({"name": "good", "system_prompt": "x"}))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "badmode.json").write_text(
        json.dumps({"name": "badmode", "system_prompt": "x", "settings": {"permission_mode": "yolo"}})
    )

    personas, problems = load_personas(tmp_path)

    assert "good" in personas and "badmode" not in personas
    assert any(p.startswith("broken.json:") for p in problems)
    assert any(p.startswith("badmode.json:") and "permission_mode" in p for p in problems)


def test_shipped_personas_are_valid():
    personas, problems = load_personas(Path(__file__).parent.parent / "personas")
    assert problems == []
    assert {"default", "brainstorm", "planner", "research"} <= set(personas)


async def test_messages_sent_while_busy_are_answered_in_order_with_their_position(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    spawner.enqueue(["hold"])
    first = await manager.send(1, "first")
    later = [await manager.send(1, f"m{i}") for i in range(3)]

    assert [d.position for d in later] == [1, 2, 3]
    spawner.release.set()
    await drain(first)
    answers = [result_of(await drain(d)) for d in later]
    assert all(not r.is_error for r in answers)
    assert spawner.started[0].received == ["first", "m0", "m1", "m2"]
    await manager.close_all()


async def test_unsent_inbox_entries_are_delivered_after_a_restart_and_cut_off_ones_reported(tmp_path):
    manager, _, _ = make_manager(tmp_path)
    manager.create("default")
    inbox = tmp_path / "sessions/.bot/sessions/default/inbox.jsonl"
    records = [
        {"op": "add", "id": "1", "chat_id": 5, "content": "was running"},
        {"op": "sent", "id": "1"},
        {"op": "add", "id": "2", "chat_id": 5, "content": "queued one"},
        {"op": "add", "id": "3", "chat_id": 5, "content": "queued two"},
    ]
    inbox.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"op": "add", "id": "4", "chat')
    front_end = Shown()
    told = front_end.told
    again, spawner, _ = make_manager(tmp_path, front_end=front_end)
    deliveries = await again.recover()
    results = [result_of(await drain(d)) for d in deliveries]

    assert [d.content for d in deliveries] == ["queued one", "queued two"]
    assert all(not r.is_error for r in results)
    assert spawner.started[0].received == ["queued one", "queued two"]
    assert any("was running" in text and "cut off" in text for _, text in told)
    assert any("Delivering 2" in text for _, text in told)
    await again.close_all()
    assert all(entry.state == EntryState.DONE for entry in Inbox(inbox).read())  # nothing to deliver again


async def test_stop_interrupts_only_the_running_turn(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    spawner.enqueue(["hold"])
    first = await manager.send(1, "slow")
    second = await manager.send(1, "next")
    stream = aiter(first.events())
    await anext(stream)

    assert await manager.interrupt("default")
    rest = [event async for event in stream]
    assert result_of(rest).stopped
    assert not result_of(await drain(second)).is_error
    spawner.release.set()
    await manager.close_all()


async def test_a_start_failure_ends_the_turn_with_the_reason(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    spawner.fail_start = "Claude Code refuses to skip permission prompts when run as root."

    result = result_of(await drain(await manager.send(1, "hi")))

    assert result.is_error and "root" in result.text
    assert manager.status("default").state == "failed"
    await manager.close_all()


async def test_close_all_ends_queued_deliveries_with_a_promise_to_deliver_later(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    spawner.enqueue(["hold"])
    working = await manager.send(1, "working")
    queued = await manager.send(1, "waiting")
    await anext(aiter(working.events()))

    await manager.close_all()

    async with asyncio.timeout(2):
        events = await drain(queued)
    assert "delivered after it restarts" in result_of(events).text


async def test_each_chats_active_session_is_remembered_across_a_restart(tmp_path):
    manager, _, _ = make_manager(tmp_path)
    manager.create("work")
    manager.switch(1, "work")
    await drain(await manager.send(2, "chat two starts default"))
    await manager.close_all()

    again, _, _ = make_manager(tmp_path)

    assert again.active_session(1) == "work" and again.active_session(2) == "default"


# ---- what review found: each of these failed before its fix ----------------------------------------


async def test_close_all_ends_a_delivery_waiting_for_a_live_slot_and_the_running_one(tmp_path):
    manager, spawner, _ = make_manager(tmp_path, max_live=1)
    manager.create("a"), manager.switch(1, "a")
    manager.create("b"), manager.switch(2, "b")
    spawner.enqueue(["hold"])
    running = await manager.send(1, "busy")
    await anext(aiter(running.events()))
    waiting = await manager.send(2, "waiting for a slot")
    await anext(aiter(waiting.events()))  # the "all live sessions are busy" notice

    await manager.close_all()

    async with asyncio.timeout(2):
        ends = [await drain(running), await drain(waiting)]
    assert all(sum(isinstance(e, TurnResult) for e in events) == 1 for events in ends)
    assert "delivered after it restarts" in result_of(ends[1]).text


async def test_close_all_ends_a_delivery_whose_process_is_still_starting(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    spawner.start_gate.clear()
    delivery = await manager.send(1, "hi")
    await anext(aiter(delivery.events()))  # the "created session" notice

    await manager.close_all()

    async with asyncio.timeout(2):
        events = await drain(delivery)
    assert result_of(events).is_error
    assert spawner.started[0].stopped


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        ("start", "Argument list too long"),
        ("submit", "pipe broke"),
        ("metadata", "metadata"),
    ],
)
async def test_an_unexpected_failure_ends_the_message_with_an_error_and_the_worker_lives_on(tmp_path, fault, what):
    manager, spawner, _ = make_manager(tmp_path)
    manager.create("default")
    metadata = tmp_path / "sessions/.bot/sessions/default/metadata.json"
    if fault == "start":
        spawner.start_error = OSError(errno.E2BIG, "Argument list too long")
    elif fault == "submit":
        spawner.submit_error = RuntimeError("pipe broke")
    else:
        metadata.unlink()
        metadata.mkdir()  # writing metadata.json now fails with an OSError

    first, behind = await manager.send(1, "one"), await manager.send(1, "two")
    async with asyncio.timeout(2):
        results = [result_of(await drain(first)), result_of(await drain(behind))]

    assert all(r.is_error and what in r.text for r in results)
    spawner.start_error = spawner.submit_error = None
    if metadata.is_dir():
        metadata.rmdir()
    async with asyncio.timeout(2):
        assert not result_of(await drain(await manager.send(1, "three"))).is_error
    await manager.close_all()


async def test_a_send_accepted_before_delete_makes_delete_refuse(tmp_path):
    manager, _spawner, _ = make_manager(tmp_path)
    manager.create("x"), manager.switch(1, "x")

    sending = asyncio.create_task(manager.send(1, "hi"))
    deleting = asyncio.create_task(manager.delete("x"))
    delivery, refused = await asyncio.gather(sending, deleting, return_exceptions=True)

    assert isinstance(delivery, Delivery) and isinstance(refused, SessionError)
    assert not result_of(await drain(delivery)).is_error
    assert (tmp_path / "sessions/x").is_dir()
    await manager.close_all()


async def test_a_send_after_delete_began_fails_clearly_and_starts_nothing(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    manager.create("x"), manager.switch(1, "x")
    await drain(await manager.send(1, "make it live"))

    deleting = asyncio.create_task(manager.delete("x"))
    sending = asyncio.create_task(manager.send(1, "hi"))
    deleted, refused = await asyncio.gather(deleting, sending, return_exceptions=True)

    assert deleted is None
    assert isinstance(refused, SessionError) and "deleted" in str(refused)
    assert len(spawner.started) == 1 and spawner.started[0].stopped
    assert not (tmp_path / "sessions/x").exists()
    await manager.close_all()


async def test_ensure_active_creates_the_default_session_exactly_once_and_another_chat_gets_its_own(tmp_path):
    manager, _, _ = make_manager(tmp_path)

    name, notice = manager.ensure_active(1)
    again = manager.ensure_active(1)
    adopted = manager.ensure_active(2)

    assert name == "default" and notice is not None and "Created" in notice
    assert again == ("default", None)
    assert adopted[0] == "chat-2" and adopted[1] is not None and "Created session “chat-2”" in adopted[1]
    assert manager.active_session(1) == "default" and manager.active_session(2) == "chat-2"
    assert (await manager.set_model("default", "haiku")).model == "haiku"
    events = await drain(await manager.send(1, "hi"))
    assert not any(isinstance(e, Notice) for e in events)  # the chat already had its session
    await manager.close_all()
