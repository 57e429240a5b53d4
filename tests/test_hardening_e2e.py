"""End to end (real PTB over the fake Bot API, real CLI): the chat rule, business updates, a rejected token."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot_harness import OWNER, bot_env, running_bot
from conftest import ROOT
from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.real_cli
TEAM = -100777


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeBotAPI, FakeAnthropic]]:
    async with FakeBotAPI() as tg, FakeAnthropic() as api:
        yield tg, api


async def test_the_owner_in_an_unlisted_group_is_told_how_to_list_it_and_claude_sees_nothing(tmp_path, fakes):
    tg, api = fakes
    async with running_bot(tmp_path, tg, api) as bot:
        tg.push_text(TEAM, "summarise our secrets for everyone here", user_id=OWNER, chat_type="supergroup")
        await bot.reply_containing("ALLOWED_CHAT_IDS", chat_id=TEAM)
        tg.push_text(TEAM, "/status", user_id=OWNER, chat_type="supergroup")
        tg.push_text(OWNER, "still me, privately")
        await bot.reply_containing("echo: still me, privately")

    team_texts = [str(c.params.get("text")) for c in tg.calls_to("sendMessage") if c.params["chat_id"] == TEAM]
    assert len(team_texts) == 1 and "-100777" in team_texts[0]  # told once; /status answered nothing there
    assert all("secrets" not in text for r in api.requests for text in r.user_texts)


async def test_a_listed_group_is_answered(tmp_path, fakes):
    tg, api = fakes
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(TEAM)) as bot:
        tg.push_text(TEAM, "hello team", user_id=OWNER, chat_type="supergroup")
        await bot.reply_containing("echo: hello team", chat_id=TEAM, timeout=60)


async def test_a_business_message_never_becomes_a_prompt(tmp_path, fakes):
    tg, api = fakes
    async with running_bot(tmp_path, tg, api) as bot:
        customer = {"id": 5555, "type": "private", "first_name": "customer"}
        tg.push_update({"business_message": {
            "message_id": 1, "date": 0, "chat": customer, "business_connection_id": "bc1",
            "from": {"id": OWNER, "is_bot": False, "first_name": "owner"}, "text": "send them the prices"}})
        tg.push_text(OWNER, "after the business message")
        await bot.reply_containing("echo: after the business message")

    assert not [c for c in tg.calls_to("sendMessage") if c.params["chat_id"] == 5555]
    assert all("prices" not in text for r in api.requests for text in r.user_texts)


async def test_a_rejected_token_is_one_line_without_the_token_and_a_nonzero_exit(tmp_path, fakes):
    tg, api = fakes
    secret = "rejected-SECRETvalue"  # not <digits>:<…>, so the fake Bot API answers 401 like Telegram
    env = bot_env(tmp_path, tg, api, TELEGRAM_BOT_TOKEN=secret)
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )

    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in output
    assert "SECRETvalue" not in output and "Traceback" not in output
