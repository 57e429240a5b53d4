"""Approvals that do what they say and rules that last (#21), end to end: real CLI, real PTB Application, fake Bot
API and Messages API, each from a private chat and from a forum topic.

The fake Messages API answers "tool said: …" whenever the last user message holds a tool result, so these tests
check what reached the API (requests, tool results, the last user text) rather than the reply's words.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot_harness import OWNER, RunningBot, running_bot
from claude_bridge.sessions.place import Place
from fake_anthropic import FakeAnthropic, Request
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import BotMessage, FakeBotAPI
from processes import eventually

pytestmark = pytest.mark.real_cli
FORUM = -100777
TOUCH = {"command": "touch notes.txt", "description": "Create notes.txt"}


@dataclass(frozen=True)
class Spot:
    """Where the person talks to the bot: a private chat, or a topic of a forum the bot may answer in."""

    chat_id: int
    thread_id: int | None
    env: dict[str, str]

    def say(self, tg: FakeBotAPI, text: str) -> int:
        since = len(tg.calls)
        tg.push_text(self.chat_id, text, user_id=OWNER, thread_id=self.thread_id)
        return since

    def shown(self, tg: FakeBotAPI, needle: str) -> list[BotMessage]:
        return [m for m in tg.messages(self.chat_id) if needle in (m.text or "")]


@pytest.fixture(params=["private", "topic"])
def spot(request: pytest.FixtureRequest, tg: FakeBotAPI) -> Spot:
    if request.param == "private":
        return Spot(OWNER, None, {})
    tg.make_forum(FORUM)
    return Spot(FORUM, tg.open_topic(FORUM, "Rules"), {"ALLOWED_CHAT_IDS": str(FORUM)})


async def said(bot: RunningBot, spot: Spot, needle: str, since: int) -> dict[str, object]:
    call = await bot.tg.wait_for(
        "sendMessage",
        lambda p: p.get("chat_id") == spot.chat_id and needle in str(p.get("text", "")),
        since=since,
        timeout=90,
    )
    assert call.params.get("message_thread_id") == spot.thread_id
    return call.params


async def prompt(bot: RunningBot, spot: Spot, since: int, tool: str) -> BotMessage:
    """The prompt message for `tool` sent after `since`, with its buttons."""
    params = await said(bot, spot, f"Claude wants to use {tool}", since)
    [message] = [m for m in bot.tg.messages(spot.chat_id) if m.text == params["text"] and m.reply_markup]
    return message


def labels(message: BotMessage) -> list[str]:
    return [button["text"] for row in (message.reply_markup or {})["inline_keyboard"] for button in row]


def press(bot: RunningBot, spot: Spot, message: BotMessage, label: str) -> int:
    rows = (message.reply_markup or {})["inline_keyboard"]
    [data] = [b["callback_data"] for row in rows for b in row if b["text"].startswith(label)]
    assert len(data.encode()) <= 64
    since = len(bot.tg.calls)
    bot.tg.push_callback(spot.chat_id, OWNER, data, message.message_id)
    return since


def main_requests(api: FakeAnthropic) -> list[Request]:
    """The conversation's requests (the CLI's side requests, such as a title, left out)."""
    return [request for request in api.requests if not request.is_side]


async def touch_unasked(bot: RunningBot, spot: Spot) -> None:
    """Claude runs `touch notes.txt` and nobody is asked: the tool result reached the API without error."""
    asked = len(spot.shown(bot.tg, "Claude wants to use"))
    bot.api.enqueue(ScriptedTool("Bash", TOUCH))
    await said(bot, spot, "tool said:", spot.say(bot.tg, "touch it again"))
    assert len(spot.shown(bot.tg, "Claude wants to use")) == asked
    result = [r for request in main_requests(bot.api) for r in request.tool_results][-1]
    assert not result.is_error


async def always_allow_touch(bot: RunningBot, spot: Spot) -> Path:
    """The first touch asks; "Always allow Bash(touch notes.txt)" keeps the rule in the project. Returns the folder."""
    await said(bot, spot, "echo: hello", spot.say(bot.tg, "hello"))
    name = bot.manager.active_session(Place(spot.chat_id, spot.thread_id))
    assert name is not None
    folder = Path(bot.manager.status(name).workspace)
    bot.api.enqueue(ScriptedTool("Bash", TOUCH))
    message = await prompt(bot, spot, spot.say(bot.tg, "touch notes"), "Bash")
    assert "♾ Always allow Bash(touch notes.txt)" in labels(message)
    since = press(bot, spot, message, "♾ Always allow")
    await bot.tg.wait_for("editMessageText", lambda p: "Always allowed Bash(touch notes.txt)" in str(p.get("text")))
    await said(bot, spot, "tool said:", since)
    assert (folder / "notes.txt").exists()
    kept = json.loads((folder / ".claude" / "settings.local.json").read_text())
    assert kept["permissions"]["allow"] == ["Bash(touch notes.txt)"]
    return folder


async def test_always_allow_on_a_bash_rule_lasts_over_persona_crash_restart_and_suspension_and_a_write_still_asks(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, spot: Spot
) -> None:
    async with running_bot(tmp_path, tg, api, **spot.env) as bot:
        folder = await always_allow_touch(bot, spot)
        await touch_unasked(bot, spot)  # the same process
        await said(bot, spot, "Persona of", spot.say(tg, "/persona research"))
        await touch_unasked(bot, spot)  # a new process with the research persona's prompt
        [info] = bot.manager.list_sessions()
        since = len(tg.calls)
        os.kill(info.pid or 0, signal.SIGKILL)
        await said(bot, spot, "Claude restarted", since)
        await touch_unasked(bot, spot)  # after a crash
        assert bot.manager.status(bot.manager.list_sessions()[0].name).permission_mode == "default"

    async with running_bot(tmp_path, tg, api, IDLE_TIMEOUT_SECONDS="1", **spot.env) as bot:
        await touch_unasked(bot, spot)  # after a bot restart
        [info] = bot.manager.list_sessions()
        await eventually(lambda: bot.manager.status(info.name).state == "suspended")
        await touch_unasked(bot, spot)  # after an idle suspension

        api.enqueue(ScriptedTool("Write", {"file_path": str(folder / "deploy.sh"), "content": "echo hi\n"}))
        message = await prompt(bot, spot, spot.say(tg, "write deploy.sh"), "Write")
        assert not [label for label in labels(message) if "Always" in label]
        await said(bot, spot, "tool said:", press(bot, spot, message, "🚫 Deny"))
        assert not (folder / "deploy.sh").exists()


async def test_permissions_remove_makes_claude_ask_again(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, spot: Spot
) -> None:
    async with running_bot(tmp_path, tg, api, **spot.env) as bot:
        folder = await always_allow_touch(bot, spot)
        listed = await said(bot, spot, "Allowed without asking", spot.say(tg, "/permissions"))
        assert "• Bash(touch notes.txt)" in str(listed["text"])
        [message] = [m for m in tg.messages(spot.chat_id) if m.text == listed["text"] and m.reply_markup]

        await said(bot, spot, "Removed Bash(touch notes.txt)", press(bot, spot, message, "🗑 Remove"))
        assert json.loads((folder / ".claude" / "settings.local.json").read_text())["permissions"]["allow"] == []

        api.enqueue(ScriptedTool("Bash", TOUCH))
        asked = await prompt(bot, spot, spot.say(tg, "touch it again"), "Bash")
        await said(bot, spot, "tool said:", press(bot, spot, asked, "✅ Allow"))


async def test_a_prompt_left_waiting_past_the_watchdog_is_answered_and_the_turn_finishes(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, spot: Spot
) -> None:
    async with running_bot(tmp_path, tg, api, WATCHDOG_SECONDS="1", **spot.env) as bot:
        await said(bot, spot, "echo: hello", spot.say(tg, "hello"))
        folder = Path(bot.manager.list_sessions()[0].workspace)
        api.enqueue(ScriptedTool("Write", {"file_path": str(folder / "late.txt"), "content": "late\n"}))
        message = await prompt(bot, spot, spot.say(tg, "write late.txt"), "Write")
        await asyncio.sleep(4)  # four watchdog periods while the person thinks: the time under test

        await said(bot, spot, "tool said:", press(bot, spot, message, "✅ Allow"))
        assert (folder / "late.txt").read_text() == "late\n"
        assert not [m for m in tg.messages(spot.chat_id) if "watchdog" in (m.text or "") + (m.caption or "")]


@pytest.mark.parametrize("ending", ["stop", "timeout", "typed"])
async def test_a_stopped_or_denied_prompt_ends_its_turn_and_the_next_message_gets_its_own_answer(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, spot: Spot, ending: str
) -> None:
    timeout = {"PROMPT_TIMEOUT_MINUTES": "0.05"} if ending == "timeout" else {}
    async with running_bot(tmp_path, tg, api, **timeout, **spot.env) as bot:
        await said(bot, spot, "echo: hello", spot.say(tg, "hello"))
        folder = Path(bot.manager.list_sessions()[0].workspace)
        before = len(main_requests(api))
        api.enqueue(ScriptedTool("Write", {"file_path": str(folder / "d.txt"), "content": "d\n"}))
        await prompt(bot, spot, spot.say(tg, "write d.txt"), "Write")
        if ending == "stop":
            spot.say(tg, "/stop")
        elif ending == "typed":
            spot.say(tg, "no, not that file")
        await tg.wait_for(
            "editMessageText", lambda p: "Claude wants to use Write" in str(p.get("text")) and not p.get("reply_markup")
        )
        name = bot.manager.list_sessions()[0].name
        await eventually(lambda: bot.manager.status(name).state != "busy")
        denied = len(main_requests(api))

        spot.say(tg, "what is new?")
        await eventually(lambda: len(main_requests(api)) > denied, timeout=90)
        await eventually(lambda: bot.manager.status(name).state != "busy")
        # Stopped: the denial never reached the model; typed: the model read the reason once, in that turn.
        assert denied == before + (2 if ending == "typed" else 1)
        assert len(main_requests(api)) == denied + 1 and "what is new?" in main_requests(api)[-1].last_user_text
        assert not (folder / "d.txt").exists()
