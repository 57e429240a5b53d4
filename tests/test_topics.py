"""Forum topics, fast: each topic is bound to its own session (named after the topic), the General topic is the
chat's active session, the bindings survive a restart, and a topic's answers, turns and files know their topic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot

from claude_bridge.commands.core import Commands
from claude_bridge.protocol.events import AssistantText, TaskInfo
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.routes import ChatRoutes
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.telegram.files import file_sink
from claude_bridge.telegram.outbox import Outboxes
from fake_process import FakeClock, FakeSpawner, Shown, base_options, drain
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.fast

FORUM = -100555


def make_manager(tmp_path: Path, spawner: FakeSpawner | None = None, **kwargs: Any) -> SessionManager:
    return SessionManager(
        tmp_path / "sessions",
        spawn=spawner or FakeSpawner(),
        base_options=base_options(tmp_path),
        clock=FakeClock(),
        **kwargs,
    )


def chats_json(tmp_path: Path) -> dict[str, str]:
    routes: dict[str, str] = json.loads((tmp_path / "sessions/.bot/chats.json").read_text())
    return routes


async def test_a_topics_first_message_creates_a_session_named_after_the_topic(tmp_path):
    manager = make_manager(tmp_path)

    events = await drain(await manager.send(Place(FORUM, 7), "hello", topic="Bug #12: Login fails!"))

    assert "bug-12-login-fails" in str(events[0])
    assert AssistantText("echo: hello") in events
    assert manager.active_session(Place(FORUM, 7)) == "bug-12-login-fails"
    assert manager.active_session(FORUM) is None  # the General topic has no session yet
    assert chats_json(tmp_path) == {f"{FORUM}:7": "bug-12-login-fails"}
    await manager.close_all()


async def test_topics_with_the_same_name_or_no_name_get_unique_sessions(tmp_path):
    manager = make_manager(tmp_path)

    first, _ = manager.ensure_active(Place(FORUM, 7), topic="Ideas")
    second, _ = manager.ensure_active(Place(FORUM, 9), topic="ideas")
    untitled, _ = manager.ensure_active(Place(FORUM, 11))
    emoji, _ = manager.ensure_active(Place(FORUM, 13), topic="🎉🎉")

    assert (first, second, untitled, emoji) == ("ideas", "ideas-2", "topic-11", "topic-13")
    assert manager.ensure_active(Place(FORUM, 9), topic="ideas") == ("ideas-2", None)  # bound: no second session


async def test_the_general_topic_is_the_chats_own_active_session_as_before(tmp_path):
    manager = make_manager(tmp_path)

    await drain(await manager.send(Place(FORUM), "in general"))
    await drain(await manager.send(Place(FORUM, 7), "in a topic", topic="work"))

    # A group never gets "default" (the first private chat's): its own session is named after it.
    assert manager.active_session(FORUM) == manager.active_session(Place(FORUM)) == "group-100555"
    assert chats_json(tmp_path) == {str(FORUM): "group-100555", f"{FORUM}:7": "work"}
    await manager.close_all()


async def test_topic_bindings_survive_a_restart_next_to_plain_chat_routes(tmp_path):
    path = tmp_path / "chats.json"
    path.write_text(json.dumps({"111": "default", f"{FORUM}:7": "work", f"{FORUM}:x": "bad", "1:2:3": "bad"}))

    routes = ChatRoutes(path, exists=lambda name: True)

    assert routes.get(111) == "default" and routes.get(Place(111)) == "default"
    assert routes.get(Place(FORUM, 7)) == "work"
    assert routes.get(FORUM) is None and routes.get(Place(111, 7)) is None


async def test_new_inside_a_topic_binds_the_new_session_to_that_topic_only(tmp_path):
    manager = make_manager(tmp_path)
    commands = Commands(manager)
    await drain(await manager.send(FORUM, "general first"))

    reply = await commands.run(Place(FORUM, 7), "/new research")

    assert "research" in reply.text
    assert manager.active_session(Place(FORUM, 7)) == "research"
    assert manager.active_session(FORUM) == "group-100555"
    await manager.close_all()


async def test_a_topics_delivery_and_the_sessions_last_place_carry_the_thread_id(tmp_path):
    manager = make_manager(tmp_path)

    delivery = await manager.send(Place(FORUM, 7), "hello", topic="work")
    await drain(delivery)

    assert (delivery.chat_id, delivery.thread_id, delivery.place) == (FORUM, 7, Place(FORUM, 7))
    meta = json.loads((tmp_path / "sessions/.bot/sessions/work/metadata.json").read_text())
    assert (meta["last_chat_id"], meta["last_thread_id"]) == (FORUM, 7)  # Claude's own turns go back there
    plain = await manager.send(111, "no topics here")
    await drain(plain)
    assert plain.thread_id is None
    await manager.close_all()


async def test_a_message_queued_in_a_topic_is_redelivered_to_that_topic_after_a_restart(tmp_path):
    manager = make_manager(tmp_path)
    manager.ensure_active(Place(FORUM, 7), topic="work")
    inbox = tmp_path / "sessions/.bot/sessions/work/inbox.jsonl"
    record = {"op": "add", "id": "1-1", "chat_id": FORUM, "thread_id": 7, "content": "left over"}
    inbox.write_text(json.dumps(record) + "\n")

    restarted = make_manager(tmp_path)
    [delivery] = await restarted.recover()

    assert delivery.place == Place(FORUM, 7) and delivery.session == "work"
    assert AssistantText("echo: left over") in await drain(delivery)
    await restarted.close_all()


async def test_a_file_claude_sends_from_a_topics_session_goes_to_that_topic(tmp_path):
    async with FakeBotAPI() as tg:
        tg.make_forum(FORUM)
        topic = tg.open_topic(FORUM, "work")
        (tmp_path / "report.txt").write_text("done\n")
        outboxes = Outboxes()
        async with Bot(tg.token, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot") as bot:
            deliver = file_sink(bot, outboxes)
            await deliver(OutgoingFile(FORUM, tmp_path / "report.txt", "", False, 5, thread_id=topic))
        await outboxes.close()

    [message] = tg.messages(FORUM)
    assert message.document is not None and message.thread_id == topic


async def test_a_notice_about_a_topics_session_goes_to_that_topic_and_a_plain_chat_still_gets_its_id(tmp_path):
    front_end = Shown()
    told = front_end.told
    spawner = FakeSpawner()
    manager = make_manager(tmp_path, spawner, front_end=front_end)
    await drain(await manager.send(Place(FORUM, 7), "start it", topic="work"))
    await drain(await manager.send(111, "and here"))
    for process in spawner.started:
        process.tasks["b1"] = TaskInfo("b1", "nightly backup", "local_bash")

    await manager.close_all()

    places = [where for where, _ in told]
    assert len(places) == 2 and set(places) == {
        Place(111),
        Place(FORUM, 7),
    }  # one notice each
    assert all("nightly backup" in text for _, text in told)
