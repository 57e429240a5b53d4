"""The parts SessionManager is made of, each alone: chat routes, the live pool, the worker, the inbox, the store."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from claude_bridge.protocol.events import TurnResult
from claude_bridge.sessions.inbox import COMPACT_AT, EntryState, Inbox, InboxEntry, InboxOp
from claude_bridge.sessions.pool import LivePool
from claude_bridge.sessions.routes import ChatRoutes
from claude_bridge.sessions.store import MetaStatus, Persona, SessionStore
from claude_bridge.sessions.worker import Delivery, SessionWorker
from fake_process import FakeClock, drain

pytestmark = pytest.mark.fast

# ---- routes ----


def test_routes_survive_a_restart_and_forget_deleted_sessions(tmp_path):
    existing = {"work", "play"}
    routes = ChatRoutes(tmp_path / "chats.json", existing.__contains__)
    routes.set(1, "work")
    routes.set(2, "play")
    routes.forget("play")

    again = ChatRoutes(tmp_path / "chats.json", existing.__contains__)
    existing.discard("work")

    assert again.get(2) is None
    assert again.get(1) is None  # its folder is gone
    existing.add("work")
    assert again.get(1) == "work"


def test_unreadable_routes_start_empty(tmp_path, caplog):
    (tmp_path / "chats.json").write_text("[not an object")

    routes = ChatRoutes(tmp_path / "chats.json", lambda _: True)

    assert routes.get(1) is None and "unreadable" in caplog.text


# ---- the live pool ----


@dataclass
class Member:
    name: str
    last_active: float
    live: bool = True
    busy: bool = False

    async def suspend(self) -> None:
        self.live = False


def make_pool(members: list[Member], clock: FakeClock, max_live: int = 2) -> LivePool:
    return LivePool(lambda: members, max_live=max_live, idle_after=600, clock=clock)


async def test_suspend_idle_skips_busy_and_recent_members():
    clock = FakeClock()
    old, busy, recent = Member("old", clock.now), Member("busy", clock.now, busy=True), Member("recent", 0)
    pool = make_pool([old, busy, recent], clock, max_live=9)
    clock.advance(601)
    recent.last_active = clock.now - 10

    assert await pool.suspend_idle() == ["old"]
    assert not old.live and busy.live and recent.live


async def test_a_slot_suspends_the_least_recently_used_idle_member():
    clock = FakeClock()
    older, newer, me = Member("older", 1), Member("newer", 2), Member("me", 3, live=False)
    pool = make_pool([older, newer, me], clock)

    async with pool.slot(me, on_wait=lambda: None):
        me.live = True

    assert not older.live and newer.live


async def test_a_slot_waits_while_every_member_is_busy_and_says_so_once():
    clock = FakeClock()
    first, second, me = Member("a", 1, busy=True), Member("b", 2, busy=True), Member("me", 3, live=False)
    pool = make_pool([first, second, me], clock)
    waits: list[str] = []
    told = asyncio.Event()

    def on_wait() -> None:
        waits.append("waiting")
        told.set()

    entering = asyncio.create_task(pool.slot(me, on_wait).__aenter__())
    await told.wait()
    await pool.changed()  # nothing changed that helps: it keeps waiting
    assert not entering.done()
    first.busy = False
    await pool.changed()
    await entering

    assert waits == ["waiting"] and not first.live and second.live


# ---- the worker ----


def delivery(number: int) -> Delivery:
    return Delivery("s", 1, f"m{number}", str(number), 0)


async def test_a_failing_delivery_ends_with_an_error_and_the_next_one_runs():
    answered: list[str] = []

    async def deliver(d: Delivery) -> None:
        if d.content == "m1":
            raise OSError(28, "No space left on device")
        answered.append(str(d.content))
        d.finish(TurnResult("success", False, "ok"))

    async def after() -> None:
        pass

    worker = SessionWorker("s", deliver, after)
    first, second = delivery(1), delivery(2)
    worker.accept(first)
    worker.accept(second)

    ends = [(await drain(first))[-1], (await drain(second))[-1]]

    assert isinstance(ends[0], TurnResult) and ends[0].is_error and "No space" in ends[0].text
    assert isinstance(ends[1], TurnResult) and not ends[1].is_error and answered == ["m2"]
    await worker.close()


async def test_closing_the_worker_ends_the_current_and_the_queued_deliveries():
    started = asyncio.Event()

    async def deliver(d: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    async def after() -> None:
        pass

    worker = SessionWorker("s", deliver, after)
    current, queued = delivery(1), delivery(2)
    worker.accept(current)
    worker.accept(queued)
    await started.wait()

    await worker.close()

    for d in (current, queued):
        events = await drain(d)
        assert len(events) == 1 and isinstance(events[0], TurnResult) and events[0].is_error
    assert not worker.busy


# ---- the inbox and the store ----


async def test_inbox_replays_each_entrys_latest_state(tmp_path):
    inbox = Inbox(tmp_path / "inbox.jsonl")
    a, b, _ = [await inbox.add(7, text) for text in ("a", "b", "c")]
    await inbox.mark(a, InboxOp.SENT)
    await inbox.mark(a, InboxOp.DONE)
    await inbox.mark(b, InboxOp.SENT)

    assert [(e.content, e.state) for e in inbox.read()] == [
        ("a", EntryState.DONE),
        ("b", EntryState.SENT),
        ("c", EntryState.QUEUED),
    ]


async def test_compact_never_drops_a_message_added_while_it_runs(tmp_path):
    reading, adding_done = threading.Event(), threading.Event()

    class PausingInbox(Inbox):
        def read(self) -> list[InboxEntry]:
            entries = super().read()
            if threading.current_thread() is not threading.main_thread():
                reading.set()
                adding_done.wait(0.3)  # an add that is kept out waits no longer than this
            return entries

    inbox = PausingInbox(tmp_path / "inbox.jsonl")
    entry = await inbox.add(1, "old")
    await inbox.mark(entry, InboxOp.DONE)

    compacting = asyncio.create_task(inbox.compact())
    await asyncio.to_thread(reading.wait)
    adding = asyncio.create_task(inbox.add(1, "accepted meanwhile"))
    adding.add_done_callback(lambda _: adding_done.set())
    await asyncio.gather(compacting, adding)

    assert [e.content for e in inbox.read()] == ["accepted meanwhile"]


async def test_a_finished_inbox_is_kept_until_it_has_grown_then_dropped(tmp_path):
    """Dropped after every message, the file would be made anew by the next add, whose fsync then pays for that."""
    inbox = Inbox(tmp_path / "inbox.jsonl")
    entry = await inbox.add(1, "short")
    await inbox.mark(entry, InboxOp.DONE)
    await inbox.compact(at_least=COMPACT_AT)
    assert [e.state for e in inbox.read()] == [EntryState.DONE]  # kept: a few hundred bytes

    while inbox.path.stat().st_size < COMPACT_AT:
        entry = await inbox.add(1, "x" * 1000)
        await inbox.compact(at_least=COMPACT_AT)  # one not finished yet: never dropped
        assert inbox.read()[-1].state == EntryState.QUEUED
        await inbox.mark(entry, InboxOp.DONE)
    await inbox.compact(at_least=COMPACT_AT)
    assert not inbox.path.exists()
    entry = await inbox.add(1, "after")
    await inbox.mark(entry, InboxOp.DONE)
    await inbox.compact(at_least=COMPACT_AT)
    assert [e.content for e in inbox.read()] == ["after"]  # counted afresh
    await inbox.compact()
    assert not inbox.path.exists()  # without a size: at once, as after a restart


def test_store_loads_an_old_status_and_a_vanished_persona_safely(tmp_path):
    store = SessionStore(tmp_path, {"default": Persona("default", "", "")})
    store.create("work", "default", now=5.0)
    metadata = tmp_path / ".bot/sessions/work/metadata.json"
    raw = json.loads(metadata.read_text())
    metadata.write_text(json.dumps(raw | {"status": "busy", "persona": "gone"}))

    meta = store.load("work")

    assert meta.status is MetaStatus.SUSPENDED and meta.persona == "default"
    assert store.names() == ["work"]
    assert Path(tmp_path / "work/files").is_dir()
