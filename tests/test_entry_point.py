"""`python bot.py` and `make run` as a user starts them: settings errors, a real answer, a clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot_harness import OWNER, bot_env
from conftest import ROOT
from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.real_cli


def bare_env() -> dict[str, str]:
    """The environment without any of the bot's settings."""
    names = ("TELEGRAM_", "ALLOWED_USER_IDS", "CLAUDE_BIN", "SESSIONS_DIR", "PERSONAS_DIR")
    return {k: v for k, v in os.environ.items() if not k.startswith(names)}


def test_missing_settings_name_each_one_and_exit_2(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=bare_env(), capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in run.stderr and "BotFather" in run.stderr
    assert "ALLOWED_USER_IDS" in run.stderr and "user id" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_bad_allowlist_is_refused(tmp_path):
    env = bare_env() | {"TELEGRAM_BOT_TOKEN": "1:x", "ALLOWED_USER_IDS": "alice"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 2
    assert "'alice' is not a numeric Telegram user id" in run.stderr


def test_make_run_without_configuration_exits_2_with_the_message(tmp_path):
    if (ROOT / ".env").exists():
        pytest.skip("a developer's .env configures the bot here")
    run = subprocess.run(["make", "-s", "run"], cwd=ROOT, env=bare_env(), capture_output=True, text=True, timeout=300)

    assert run.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in run.stderr and "Traceback" not in run.stderr


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeBotAPI, FakeAnthropic]]:
    async with FakeBotAPI() as tg, FakeAnthropic() as api:
        yield tg, api


async def start_bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, **extra: str) -> asyncio.subprocess.Process:
    env = bot_env(tmp_path, tg, api, **extra)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_python_bot_py_answers_a_message_and_stops_cleanly_on_sigterm(tmp_path, fakes):
    tg, api = fakes
    process = await start_bot(tmp_path, tg, api)
    try:
        await tg.wait_polling(timeout=60)
        tg.push_text(OWNER, "hello from the entry point")
        await tg.wait_for("sendMessage", lambda p: "echo: hello from the entry point" in p.get("text", ""), timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, output.decode()
    assert tg.token not in output.decode()
