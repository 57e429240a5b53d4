"""Claude speaks first, end to end: fake Bot API ↔ real PTB ↔ SessionManager ↔ real CLI ↔ fake Messages API.

A background command's completion brings Claude's follow-up into the chat as its own message; a message sent
meanwhile gets its own answer; background work keeps a session alive; /tasks stops a task.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psutil
import pytest

from bot_harness import OWNER, RunningBot, running_bot
from fake_anthropic import Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from processes import eventually, long_command, processes_matching, sleeping

pytestmark = pytest.mark.real_cli


def background(command: str, description: str) -> ScriptedTool:
    return ScriptedTool("Bash", {"command": command, "description": description, "run_in_background": True})


async def say(bot: RunningBot, text: str, expect: str) -> dict[str, Any]:
    """Send a message and wait for the bot's message that contains `expect`."""
    since = len(bot.tg.calls)
    bot.tg.push_text(OWNER, text, user_id=OWNER)
    call = await bot.tg.wait_for(
        "sendMessage", lambda p: p["chat_id"] == OWNER and expect in p.get("text", ""), since=since, timeout=60
    )
    return call.params


async def skip_prompts(bot: RunningBot) -> None:
    """These tests are about turns, not approvals: tools run unasked (ask-first is the default)."""
    await say(bot, "/mode bypassPermissions confirm", "is now bypassPermissions")


def sent(tg: FakeBotAPI) -> list[dict[str, Any]]:
    return [c.params for c in tg.calls_to("sendMessage") if c.ok and c.params["chat_id"] == OWNER]


async def test_a_finished_background_command_brings_claudes_follow_up_as_its_own_message(tmp_path, tg, api):
    api.enqueue(background(long_command(4), "short nap"), Text("started it"), Text("the nap is over"))
    async with running_bot(tmp_path, tg, api) as bot:
        await skip_prompts(bot)
        await say(bot, "nap in the background", "started it")
        await say(bot, "/new other", "New session “other”")  # nobody looks at "default" now

        header = await bot.reply_containing("Background task finished: short nap", timeout=60)
        follow_up = await bot.reply_containing("the nap is over", timeout=60)

        messages = sent(tg)
        assert messages.index(header) < messages.index(follow_up)
        assert "reply_parameters" not in header and "reply_parameters" not in follow_up  # its own message
        assert header["text"] == "🔔 Background task finished: short nap — session “default”"
        await eventually(lambda: bot.manager.status("default").turns == 2)
    meta = json.loads((tmp_path / "sessions/.bot/sessions/default/metadata.json").read_text())
    assert meta["turns"] == 2 and meta["last_chat_id"] == OWNER
    assert "short nap" in str(api.requests[-1].messages[-1])  # the model was told, not the user


async def test_a_message_sent_while_claudes_follow_up_streams_gets_its_own_unmixed_answer(tmp_path, tg, api):
    follow_up = "the nap is over " * 60
    api.enqueue(
        background(long_command(1), "nap"),
        Text("started"),
        Text(follow_up, chunk_size=16, delay=0.05),
        Text("four"),
    )
    async with running_bot(tmp_path, tg, api) as bot:
        await skip_prompts(bot)
        await say(bot, "nap in the background", "started")
        await bot.reply_containing("Background task finished: nap", timeout=60)

        mine = tg.push_text(OWNER, "what is 2+2?", user_id=OWNER)

        queued = await bot.reply_containing("⏳ Queued", timeout=30)
        answer = await bot.reply_containing("four", timeout=60)
        theirs = next(p for p in sent(tg) if p["text"].startswith("the nap is over"))

    assert theirs["text"].strip() == follow_up.strip()
    assert answer["text"] == "four" and answer["reply_parameters"]["message_id"] == mine
    assert queued["reply_parameters"]["message_id"] == mine
    assert api.requests[-1].last_user_text == "what is 2+2?"


async def test_a_running_background_task_keeps_its_session_alive_past_the_idle_timeout(tmp_path, tg, api):
    api.enqueue(background(long_command(8), "slow job"), Text("started"), Text("the slow job is done"))
    async with running_bot(tmp_path, tg, api, IDLE_TIMEOUT_SECONDS="1") as bot:
        await skip_prompts(bot)
        await say(bot, "run the slow job in the background", "started")
        pid = bot.manager.status("default").pid
        assert pid is not None and bot.manager.status("default").tasks

        await asyncio.sleep(2.0)  # longer than the idle timeout, shorter than the task
        assert await bot.manager.suspend_idle() == []
        assert psutil.pid_exists(pid) and bot.manager.status("default").state != "suspended"

        await bot.reply_containing("the slow job is done", timeout=60)
        # Once the task and Claude's turn about it are over, the session is idle like any other.
        await eventually(lambda: bot.manager.status("default").state == "suspended", timeout=30)
    assert sum("Background task finished: slow job" in p["text"] for p in sent(tg)) == 1


async def test_a_task_stopped_from_the_tasks_button_ends_and_claude_does_not_follow_up(tmp_path, tg, api):
    api.enqueue(background(long_command(300.5), "long nap"), Text("started"), Text("still here"))
    async with running_bot(tmp_path, tg, api) as bot:
        await skip_prompts(bot)
        await say(bot, "nap for long", "started")
        await eventually(lambda: processes_matching(sleeping(300.5)))
        await eventually(lambda: bool(bot.manager.status("default").tasks))

        listing = await say(bot, "/tasks", "long nap")
        [[stop]] = listing["reply_markup"]["inline_keyboard"]
        message = next(m for m in tg.messages(OWNER) if m.text and m.text.startswith("Background tasks in"))
        tg.push_callback(OWNER, OWNER, stop["callback_data"], message.message_id)

        await bot.reply_containing("Stopped background task long nap")
        await eventually(lambda: not processes_matching(sleeping(300.5)))
        await eventually(lambda: bot.manager.status("default").tasks == ())
        await say(bot, "are you there?", "still here")
        status = await say(bot, "/status", "Session: default")

    assert stop["callback_data"].startswith("/tasks stop ") and len(stop["callback_data"].encode()) <= 64
    assert "Background tasks" not in status["text"]
    assert not any("Background task finished" in p["text"] for p in sent(tg))


async def test_shutting_down_with_a_running_task_tells_the_chat_which_task_was_stopped(tmp_path, tg, api):
    api.enqueue(background(long_command(300.5), "endless nap"), Text("started"))
    async with running_bot(tmp_path, tg, api) as bot:
        await skip_prompts(bot)
        await say(bot, "nap forever", "started")
        await eventually(lambda: bool(bot.manager.status("default").tasks))

    stopped = [p["text"] for p in sent(tg) if "background task(s) were stopped" in p["text"]]
    assert len(stopped) == 1 and "endless nap" in stopped[0]
    await eventually(lambda: not processes_matching(sleeping(300.5)))

