"""Claude's own cron end to end (real PTB over the fake Bot API, real CLI), from a private chat and a forum topic at
once, each with its own session: a recurring cron Claude makes in the topic's session fires there only; the bot is
restarted, the session is started again at once and the cron fires there again, with no message written.

The CLI fires a `* * * * *` cron some seconds into each minute (measured: ~21 s on both versions), and only while
its process runs, so each fire is awaited for up to two minutes: the test takes about three.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot_harness import OWNER, RunningBot, running_bot
from claude_bridge.sessions.place import Place
from conftest import real_cli_version
from fake_anthropic import Reply, Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from processes import eventually

pytestmark = [pytest.mark.real_cli, pytest.mark.timeout(420)]
FORUM = -100777
TICK = "tick from the topic"
FIRE_WAIT = 130.0  # a minute to the next fire, plus the CLI's offset into that minute and a margin


def cron_made(prompt: str) -> list[Reply]:
    """Claude makes a recurring every-minute cron. 2.1.332 defers the Cron tools: a model loads them with
    ToolSearch first (a direct call works too, measured); 2.1.197 has them loaded."""
    cron = ScriptedTool("CronCreate", {"cron": "* * * * *", "prompt": prompt, "recurring": True})
    if real_cli_version() >= (2, 1, 332):
        return [ScriptedTool("ToolSearch", {"query": "select:CronCreate", "max_results": 1}), cron]
    return [cron]


async def said(bot: RunningBot, place: Place, expect: str, since: int = 0, timeout: float = 60) -> dict[str, Any]:
    """Wait for the bot's message in the place containing `expect`."""
    call = await bot.tg.wait_for(
        "sendMessage",
        lambda p: p["chat_id"] == place.chat_id
        and p.get("message_thread_id") == place.thread_id
        and expect in p.get("text", ""),
        since=since,
        timeout=timeout,
    )
    return call.params


async def typed(bot: RunningBot, place: Place, text: str, expect: str) -> dict[str, Any]:
    since = len(bot.tg.calls)
    bot.tg.push_text(place.chat_id, text, user_id=OWNER, thread_id=place.thread_id)
    return await said(bot, place, expect, since)


def turns_today(bot: RunningBot, name: str) -> int:
    return bot.manager.usage_book().today(name, time.time()).today_turns


def texts(tg: FakeBotAPI, chat_id: int) -> list[str]:
    calls = tg.calls_to("sendMessage")
    return [str(c.params.get("text", "")) for c in calls if c.ok and c.params["chat_id"] == chat_id]


async def test_claudes_own_cron_fires_in_its_place_and_keeps_firing_after_a_restart(tmp_path, tg, api):
    tg.make_forum(FORUM)
    topic = Place(FORUM, tg.open_topic(FORUM, "Nightly"))
    private = Place(OWNER)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        await typed(bot, private, "hello", "echo: hello")
        api.enqueue(*cron_made(TICK), Text("I will tick every minute."))
        await typed(bot, topic, "tick every minute please", "I will tick every minute.")
        name = bot.manager.active_session(topic)
        assert name is not None and name != bot.manager.active_session(private)

        since = len(tg.calls)
        await said(bot, topic, f"echo: {TICK}", timeout=FIRE_WAIT)  # Claude's own turn, in the topic
        await said(bot, topic, f"⏰ Claude's cron * * * * *: {TICK}", since)  # headed by the cron that fired
        await eventually(lambda: turns_today(bot, name) >= 2)  # the cron's turn counts in /usage, as a message's
        assert f"• {name}: " in (await typed(bot, topic, "/usage", "Plan limit"))["text"]
        assert name not in (await typed(bot, private, "/usage", "Plan limit"))["text"]
        listed = await typed(bot, topic, "/tasks", "Claude's own schedules")
        assert "⏰ cron * * * * * (recurring" in listed["text"] and TICK in listed["text"]
        await typed(bot, topic, "/every 1d nightly summary", "⏰ Scheduled")
        assert "· by Alice" in (await typed(bot, topic, "/schedules", "nightly summary"))["text"]

    since = len(tg.calls)
    asked = len(api.requests)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM), IDLE_TIMEOUT_SECONDS="1") as bot:
        await bot.manager.claude_schedules_kept()
        before = turns_today(bot, name)
        assert before >= 2  # today's count came back with the session's metadata
        assert bot.manager.status(name).pid is not None  # started at start, before any message
        assert await bot.manager.suspend_idle() == []  # and kept alive for its cron

        await said(bot, topic, f"echo: {TICK}", since, timeout=FIRE_WAIT)
        await said(bot, topic, f"⏰ Claude's cron * * * * *: {TICK}", since)  # the kept book still says which
        await eventually(lambda: turns_today(bot, name) > before)
        assert TICK in (await typed(bot, topic, "/tasks", "Claude's own schedules"))["text"]

    assert api.requests[asked].last_user_text == TICK  # the cron's prompt: nobody typed anything
    assert not any(TICK in text or "lost in the restart" in text for text in texts(tg, OWNER))
    assert not any("lost in the restart" in text for text in texts(tg, FORUM))
