"""The usage limit end to end: fake Bot API ↔ real PTB ↔ SessionManager ↔ real CLI (a subscription login) ↔ a fake
Messages API that refuses with 429 and the unified headers until a reset a few seconds ahead."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot_harness import OWNER, RunningBot, running_bot
from fake_anthropic import FakeAnthropic, UsageLimit
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.real_cli
GROUP = -100500
AHEAD = 8.0  # seconds until the fake plan resets
SUBSCRIPTION = {"ANTHROPIC_API_KEY": None, "CLAUDE_CODE_OAUTH_TOKEN": "fake-oauth-token"}
SETTINGS = {**SUBSCRIPTION, "ALLOWED_CHAT_IDS": str(GROUP), "LIMIT_RESUME_MARGIN_SECONDS": "1"}
LIMIT = "limit is reached"


def texts_in(bot: RunningBot, chat_id: int) -> list[str]:
    return bot.texts(chat_id)


async def limit_message(bot: RunningBot, chat_id: int) -> int:
    """Wait for the chat's limit message; its id (it carries the Cancel button)."""
    params = await bot.reply_containing(LIMIT, chat_id=chat_id, timeout=60)
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/limit cancel"
    (message,) = [m for m in bot.visible(chat_id) if LIMIT in (m.text or "")]
    return message.message_id


def asked(api: FakeAnthropic, text: str) -> int:
    return sum(1 for request in api.requests if request.last_user_text == text)


async def test_both_places_are_told_once_held_and_answered_after_the_reset_without_writing(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic
) -> None:
    api.usage = UsageLimit(resets_at=time.time() + AHEAD)
    async with running_bot(tmp_path, tg, api, **SETTINGS) as bot:
        tg.push_text(OWNER, "first", user_id=OWNER)
        await limit_message(bot, OWNER)
        tg.push_text(GROUP, "second", user_id=OWNER)
        await bot.reply_containing("⏳ Queued — after the limit resets at", chat_id=GROUP, timeout=30)
        await limit_message(bot, GROUP)
        assert asked(api, "second") == 0  # held, not sent to be refused

        await bot.reply_containing("echo: first", chat_id=OWNER, timeout=60)
        await bot.reply_containing("echo: second", chat_id=GROUP, timeout=60)

    for chat in (OWNER, GROUP):
        shown = texts_in(bot, chat)
        assert sum(LIMIT in text or "has reset" in text for text in shown) == 1  # one message, edited
        assert any("has reset; carrying on" in text for text in shown)
        assert not any("You've hit your" in text for text in shown)  # the CLI's words are not an answer
    assert asked(api, "second") == 1


async def test_a_restart_during_the_wait_keeps_the_plan_and_the_refused_message(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic
) -> None:
    api.usage = UsageLimit(resets_at=time.time() + AHEAD)
    async with running_bot(tmp_path, tg, api, **SETTINGS) as bot:
        tg.push_text(OWNER, "first", user_id=OWNER)
        await limit_message(bot, OWNER)
        tg.push_text(GROUP, "second", user_id=OWNER)
        await limit_message(bot, GROUP)

    assert time.time() < api.usage.resets_at  # the restart happens inside the wait
    async with running_bot(tmp_path, tg, api, **SETTINGS) as bot:
        await bot.reply_containing("echo: first", chat_id=OWNER, timeout=60)
        await bot.reply_containing("echo: second", chat_id=GROUP, timeout=60)

    assert any("has reset; carrying on" in text for text in texts_in(bot, OWNER))  # the old message, edited
    assert asked(api, "second") == 1


async def test_a_cancel_in_the_group_holds_back_only_the_groups_message(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic
) -> None:
    """The Cancel button belongs to its place: the group's held message waits for the group, the private chat's
    goes on at the reset by itself."""
    api.usage = UsageLimit(resets_at=time.time() + 3)
    async with running_bot(tmp_path, tg, api, **SETTINGS) as bot:
        tg.push_text(OWNER, "first", user_id=OWNER)
        await limit_message(bot, OWNER)
        tg.push_text(GROUP, "second", user_id=OWNER)
        message_id = await limit_message(bot, GROUP)
        tg.push_callback(GROUP, OWNER, "/limit cancel", message_id=message_id)
        await bot.reply_containing("Cancelled", chat_id=GROUP, timeout=30)
        since = len(tg.calls)

        await bot.reply_containing("echo: first", chat_id=OWNER, timeout=60)  # the private chat's, by itself
        await asyncio.sleep(max(0.0, api.usage.resets_at + 3 - time.time()))  # past the reset and the margin
        assert asked(api, "second") == 0  # the group's was not sent by itself
        typing = [c for c in tg.calls[since:] if c.method == "sendChatAction" and c.params["chat_id"] == GROUP]
        assert typing == []  # nobody is typing in the group: its message waits for its user

        tg.push_text(GROUP, "again", user_id=OWNER)
        await bot.reply_containing("echo: second", chat_id=GROUP, timeout=60)
        await bot.reply_containing("echo: again", chat_id=GROUP, timeout=60)

    assert any("has reset; carrying on" in text for text in texts_in(bot, OWNER))
    assert not any("has reset; carrying on" in text for text in texts_in(bot, GROUP))  # its message says Cancelled
