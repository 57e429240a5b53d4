"""End to end, all real but the two HTTP services: a chat message reaches Claude and the answer comes back."""

from __future__ import annotations

import pytest

from bot_harness import OWNER, STRANGER, running_bot

pytestmark = pytest.mark.real_cli




async def test_an_allowed_users_messages_are_answered_in_one_conversation(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api) as bot:
        tg.push_text(OWNER, "hello there")
        await bot.reply_containing("echo: hello there")

        tg.push_text(OWNER, "second message")
        await bot.reply_containing("echo: second message")

    second = api.requests[-1]
    assert second.user_texts[:2] == ["hello there", "second message"]
    assert "echo: hello there" in str(second.messages)
    assert any("Created session" in text for text in bot.texts())


async def test_a_stranger_gets_one_short_refusal_and_never_reaches_claude(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api) as bot:
        tg.push_text(STRANGER, "let me in", user_id=STRANGER)
        refusal = await bot.reply_containing("private bot", chat_id=STRANGER)
        tg.push_text(STRANGER, "please", user_id=STRANGER)
        tg.push_text(OWNER, "ping")
        await bot.reply_containing("echo: ping")

    assert str(STRANGER) in refusal["text"]
    assert len(bot.texts(STRANGER)) == 1
    assert [r.last_user_text for r in api.requests] == ["ping"]
