"""Claude's commands and prompts on a schedule end to end (real PTB over the fake Bot API, real CLI), from a private
chat and a forum topic at once: a project's command in the chat's menu and run when typed, `/at` answered in its
place only, a schedule outliving a restart, and a run missed while the bot was down run once, late, saying so."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot_harness import OWNER, RunningBot, running_bot
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.schedules import STORE_NAME, Schedule, Schedules
from claude_bridge.sessions.store import STATE_DIR
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.real_cli
FORUM = -100777


async def said(bot: RunningBot, chat_id: int, thread_id: int | None, expect: str, since: int = 0) -> dict[str, Any]:
    """Wait for the bot's message in the chat (and topic) containing `expect`."""
    call = await bot.tg.wait_for(
        "sendMessage",
        lambda p: p["chat_id"] == chat_id and p.get("message_thread_id") == thread_id and expect in p.get("text", ""),
        since=since,
        timeout=60,
    )
    return call.params


async def typed(bot: RunningBot, chat_id: int, thread_id: int | None, text: str, expect: str) -> dict[str, Any]:
    since = len(bot.tg.calls)
    bot.tg.push_text(chat_id, text, user_id=OWNER, thread_id=thread_id)
    return await said(bot, chat_id, thread_id, expect, since)


def texts(tg: FakeBotAPI, chat_id: int) -> list[str]:
    calls = tg.calls_to("sendMessage")
    return [str(c.params.get("text", "")) for c in calls if c.ok and c.params["chat_id"] == chat_id]


def command_file(workspace: str, name: str, body: str) -> None:
    folder = Path(workspace) / ".claude" / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(body)


async def test_a_projects_own_command_is_in_the_chats_menu_and_runs_when_typed(tmp_path, tg, api):
    tg.make_forum(FORUM)
    topic = tg.open_topic(FORUM, "Gamma")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        command_file(bot.manager.create("default").workspace, "hello-world", "Say hello to $ARGUMENTS politely.")
        # The topic's own session (a session belongs to the place that made it).
        command_file(bot.manager.create("gamma", home=Place(FORUM, topic)).workspace, "ship-it", "Ship $ARGUMENTS now.")
        await typed(bot, OWNER, None, "hello", "echo: hello")
        await typed(bot, FORUM, topic, "/switch gamma", "Active session: “gamma”")
        await typed(bot, FORUM, topic, "hi there", "echo: hi there")

        private = [c["command"] for c in tg.chat_commands[OWNER]]
        forum = [c["command"] for c in tg.chat_commands[FORUM]]
        assert "hello_world" in private and "ship_it" not in private and private[0] == "start"
        assert "ship_it" in forum and "hello_world" not in forum
        assert "clear" not in private and "help" in private  # left out; the bot's own /help wins

        await typed(bot, OWNER, None, "/hello_world alpha beta", "Say hello to alpha beta politely.")
        await typed(bot, FORUM, topic, "/ship_it the release", "Ship the release now.")
        menus = len(tg.calls_to("setMyCommands"))
        await typed(bot, OWNER, None, "and again", "echo: and again")
        assert len(tg.calls_to("setMyCommands")) == menus  # the same menu is not sent again

    assert all("Ship" not in text for text in texts(tg, OWNER))
    assert all("Say hello" not in text for text in texts(tg, FORUM))


async def test_at_in_three_seconds_is_answered_in_its_place_only(tmp_path, tg, api):
    tg.make_forum(FORUM)
    topic = tg.open_topic(FORUM, "Delta")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        await typed(bot, OWNER, None, "/at +3s say cheese", "⏰ Scheduled in session default")
        await typed(bot, FORUM, topic, "/at +3s say fromage", "⏰ Scheduled in session topic-")

        await said(bot, OWNER, None, "⏰ say cheese")
        await said(bot, OWNER, None, "echo: say cheese")
        await said(bot, FORUM, topic, "⏰ say fromage")
        await said(bot, FORUM, topic, "echo: say fromage")
        listing = await typed(bot, OWNER, None, "/schedules", "No scheduled prompts here.")
        assert listing["chat_id"] == OWNER

    assert all("fromage" not in text for text in texts(tg, OWNER))
    assert all("cheese" not in text for text in texts(tg, FORUM))
    asked = [r.last_user_text for r in api.requests if not r.is_side]
    assert asked.count("say cheese") == asked.count("say fromage") == 1


async def test_a_schedule_outlives_a_restart_of_the_bot(tmp_path, tg, api):
    tg.make_forum(FORUM)
    topic = tg.open_topic(FORUM, "Epsilon")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        await typed(bot, OWNER, None, "/at +8s after the restart", "⏰ Scheduled")
        await typed(bot, FORUM, topic, "/every 1m every minute", "⏰ Scheduled")
        await typed(bot, FORUM, topic, "/schedules", "every 1m: every minute")
    since = len(tg.calls)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        listed = await typed(bot, FORUM, topic, "/schedules", "every 1m: every minute")
        assert "after the restart" not in listed["text"]
        await said(bot, OWNER, None, "echo: after the restart", since)
        await said(bot, FORUM, topic, "echo: every minute", since)


class Nobody:
    """A FireTarget for writing a store while no bot runs."""

    async def fire(self, schedule: Schedule, late_by: timedelta | None) -> None:
        raise AssertionError("nothing fires while the store is written")

    async def missed(self, schedule: Schedule, due: datetime) -> None:
        raise AssertionError("nothing is missed while the store is written")


async def test_a_run_missed_by_two_minutes_runs_once_late_and_says_so(tmp_path, tg, api):
    tg.make_forum(FORUM)
    topic = tg.open_topic(FORUM, "Zeta")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        bot.manager.create("default")
        bot.manager.create("zeta")
        zone = bot.settings.time_zone
        store = bot.settings.sessions_dir / STATE_DIR / STORE_NAME
    # While the bot is down: runs that fell due 2 minutes ago and 3 hours ago (written with the clock set back).
    back = datetime.now(zone) - timedelta(minutes=3)
    writer = Schedules(store, Nobody(), zone, clock=lambda: back)
    await writer.start(run=False)
    writer.add(Place(OWNER), "default", "at", "+1m late but fine")
    writer.add(Place(FORUM, topic), "zeta", "at", "+1m topic late too")
    long_ago = Schedules(store, Nobody(), zone, clock=lambda: back - timedelta(hours=3))
    await writer.shutdown()
    await long_ago.start(run=False)
    long_ago.add(Place(OWNER), "default", "at", "+1m far too late")
    await long_ago.shutdown()

    since = len(tg.calls)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        await said(bot, OWNER, None, "⏰ late but fine (runs 2 min late: the bot was down)", since)
        await said(bot, OWNER, None, "echo: late but fine", since)
        await said(bot, FORUM, topic, "⏰ topic late too (runs 2 min late: the bot was down)", since)
        await said(bot, OWNER, None, "⏰ Missed: far too late (session default)", since)
        await typed(bot, OWNER, None, "/schedules", "No scheduled prompts here.")

    asked = [r.last_user_text for r in api.requests if not r.is_side]
    assert asked.count("late but fine") == 1 and "far too late" not in asked


