"""send_file reaches the session's own folder, end to end (real CLI, real PTB over the fake Bot API), from a private
chat and a group: inside it files go unasked, elsewhere the user is asked, and the bot's secrets never leave."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot_harness import OWNER, RunningBot, running_bot
from fake_anthropic import FakeAnthropic
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import BotMessage, FakeBotAPI

pytestmark = pytest.mark.real_cli
SEND_FILE = "mcp__telegram__send_file"
GROUP = -100700
PLACES = [pytest.param(OWNER, id="private"), pytest.param(GROUP, id="group")]


@pytest_asyncio.fixture
async def bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[RunningBot]:
    # The bot's layout as installed: its .env next to SESSIONS_DIR, so `../../.env` from a session reaches it.
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={tg.token}\nALLOWED_USER_IDS={OWNER}\n")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(GROUP)) as running:
        yield running


async def ask_claude(bot: RunningBot, chat: int, text: str) -> str:
    """Claude calls the scripted send_file for `text`; returns what the tool told Claude (an error here)."""
    since = len(bot.tg.calls)
    bot.tg.push_text(chat, text, user_id=OWNER)
    await bot.tg.wait_for(
        "sendMessage", lambda p: p["chat_id"] == chat and "tool said:" in p.get("text", ""), since=since, timeout=60
    )
    [result] = bot.api.requests[-1].tool_results
    assert result.is_error
    return result.content


def files_in(bot: RunningBot, chat: int) -> list[BotMessage]:
    return [m for m in bot.tg.messages(chat) if m.document is not None or m.photo is not None]


async def next_prompt(bot: RunningBot, chat: int, text: str) -> BotMessage:
    """Send `text`; wait for the send_file prompt it causes in the chat and return it."""
    since = len(bot.tg.calls)
    bot.tg.push_text(chat, text, user_id=OWNER)
    await bot.tg.wait_for(
        "sendMessage",
        lambda p: p["chat_id"] == chat and "send_file" in p.get("text", "") and p.get("reply_markup") is not None,
        since=since,
        timeout=60,
    )
    return [m for m in bot.tg.messages(chat) if m.reply_markup and "send_file" in (m.text or "")][-1]


def press(bot: RunningBot, chat: int, message: BotMessage, label: str) -> None:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    data = next(b["callback_data"] for row in rows for b in row if label in b["text"])
    bot.tg.push_callback(chat, OWNER, data, message.message_id)


@pytest.mark.parametrize("chat", PLACES)
async def test_the_bots_env_its_state_and_claudes_login_are_never_sent(bot, tg, api, tmp_path, chat):
    (tmp_path / "claude-config/.credentials.json").write_text('{"claudeAiOauth": {}}')
    tg.push_text(chat, "hello", user_id=OWNER)
    await bot.reply_containing("echo: hello", chat_id=chat, timeout=60)
    cases = {
        "../../.env": "holds the bot's token",
        str(tmp_path / "claude-config/.credentials.json"): "is Claude's login",
        f"../.bot/sessions/{bot.manager.active_session(chat)}/metadata.json": "inside the bot's state folder",
    }

    for path, why in cases.items():
        api.enqueue(ScriptedTool(SEND_FILE, {"path": path}))
        said = await ask_claude(bot, chat, f"send {path}")
        assert why in said and "never sends it" in said

    assert not files_in(bot, chat) and not tg.calls_to("sendDocument")


@pytest.mark.parametrize("chat", PLACES)
async def test_a_copy_of_the_token_inside_the_session_folder_is_never_sent(bot, tg, api, tmp_path, chat):
    tg.push_text(chat, "hello", user_id=OWNER)
    await bot.reply_containing("echo: hello", chat_id=chat, timeout=60)
    folder = tmp_path / "sessions" / str(bot.manager.active_session(chat))  # the group's own session's folder
    (folder / "notes.txt").write_text(f"leaked: {tg.token}\n")
    (folder / "link.txt").symlink_to(tmp_path / ".env")

    api.enqueue(ScriptedTool(SEND_FILE, {"path": "notes.txt"}))
    copied = await ask_claude(bot, chat, "send the notes")
    api.enqueue(ScriptedTool(SEND_FILE, {"path": "link.txt"}))
    linked = await ask_claude(bot, chat, "send the link")

    assert "holds the bot's token" in copied and "holds the bot's token" in linked
    assert not files_in(bot, chat)


@pytest.mark.parametrize("chat", PLACES)
async def test_a_file_outside_the_session_folder_is_asked_for_and_sent_only_when_allowed(bot, tg, api, tmp_path, chat):
    (tmp_path / "outside").mkdir()
    payroll = tmp_path / "outside/payroll.csv"
    payroll.write_text("name,salary\nbob,100\n")
    tg.push_text(chat, "hello", user_id=OWNER)
    await bot.reply_containing("echo: hello", chat_id=chat, timeout=60)

    api.enqueue(ScriptedTool(SEND_FILE, {"path": str(payroll)}))
    denied_prompt = await next_prompt(bot, chat, "send the payroll")
    press(bot, chat, denied_prompt, "Deny")
    await bot.reply_containing("tool said: The user did not allow sending", chat_id=chat, timeout=60)
    assert not files_in(bot, chat)

    api.enqueue(ScriptedTool(SEND_FILE, {"path": str(payroll)}))
    allowed_prompt = await next_prompt(bot, chat, "send it after all")
    press(bot, chat, allowed_prompt, "Allow")
    await bot.reply_containing("tool said: Sent payroll.csv", chat_id=chat, timeout=60)

    assert str(payroll) in (denied_prompt.text or "") and "outside this session's folder" in (denied_prompt.text or "")
    [sent] = files_in(bot, chat)
    assert sent.document is not None and sent.document.content == payroll.read_bytes()
