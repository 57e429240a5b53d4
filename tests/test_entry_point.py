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
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from processes import claude_processes, eventually, long_command, processes_matching, sleeping

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


async def skip_prompts(tg: FakeBotAPI) -> None:
    """These tests need a tool running, not an approval: the active session runs tools unasked."""
    tg.push_text(OWNER, "/mode bypassPermissions confirm")
    await tg.wait_for("sendMessage", lambda p: "is now bypassPermissions" in p.get("text", ""), timeout=30)


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
    process = await start_bot(tmp_path, tg, api, LOG_LEVEL="DEBUG")
    try:
        await tg.wait_polling(timeout=60)
        tg.push_text(OWNER, "hello from the entry point")
        await tg.wait_for("sendMessage", lambda p: "echo: hello from the entry point" in p.get("text", ""), timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)

    log = output.decode()
    assert process.returncode == 0, log
    assert "hello from the entry point" in log  # message bodies appear at DEBUG …
    assert tg.token not in log and tg.token.split(":")[1] not in log  # … the token never does
    for lifecycle in ("starting;", "spawned Claude CLI pid", "shutting down", "shutdown complete"):
        assert lifecycle in log





async def test_sigterm_with_a_tool_running_exits_0_and_leaves_no_process(tmp_path, fakes):
    tg, api = fakes
    process = await start_bot(tmp_path, tg, api)
    try:
        await tg.wait_polling(timeout=60)
        tg.push_text(OWNER, "/new other")
        await tg.wait_for("sendMessage", lambda p: "other" in p.get("text", ""), timeout=30)
        tg.push_text(OWNER, "warm up other")
        await tg.wait_for("sendMessage", lambda p: "echo: warm up other" in p.get("text", ""), timeout=60)
        tg.push_text(OWNER, "/new work")
        await tg.wait_for("sendMessage", lambda p: "work" in p.get("text", ""), timeout=30)
        await skip_prompts(tg)
        api.enqueue(ScriptedTool("Bash", {"command": long_command(300.625), "description": "long"}))
        tg.push_text(OWNER, "run the long thing")
        await eventually(lambda: bool(processes_matching(sleeping(300.625))))
        assert len(claude_processes(tmp_path / "sessions")) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, output.decode()
    assert not processes_matching(sleeping(300.625))
    assert not claude_processes(tmp_path / "sessions")
    log = output.decode()
    assert "shutdown complete" in log and tg.token not in log
    assert "run the long thing" not in log  # no message bodies at INFO


async def test_a_second_instance_on_the_same_sessions_exits_at_once(tmp_path, fakes):
    tg, api = fakes
    first = await start_bot(tmp_path, tg, api)
    try:
        await tg.wait_polling(timeout=60)
        second = await start_bot(tmp_path, tg, api)
        output, _ = await asyncio.wait_for(second.communicate(), 30)
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.communicate(), 60)

    assert second.returncode == 1
    assert "already running" in output.decode() and "409" in output.decode()


async def test_after_the_bot_is_killed_the_next_start_stops_what_it_left(tmp_path, fakes):
    tg, api = fakes
    first = await start_bot(tmp_path, tg, api)
    await tg.wait_polling(timeout=60)
    await skip_prompts(tg)
    api.enqueue(ScriptedTool("Bash", {"command": long_command(300.875), "description": "long"}))
    tg.push_text(OWNER, "start something long")
    await eventually(lambda: bool(processes_matching(sleeping(300.875))))
    leftover = claude_processes(tmp_path / "sessions")
    assert leftover and (tmp_path / "sessions/.bot/sessions/default/claude.pid").exists()

    first.kill()
    await first.wait()
    assert all(p.is_running() for p in leftover)  # the CLI outlives a SIGKILLed bot

    second = await start_bot(tmp_path, tg, api)
    try:
        sessions = tmp_path / "sessions"
        await eventually(lambda: not processes_matching(sleeping(300.875)) and not claude_processes(sessions))
        await tg.wait_for("sendMessage", lambda p: "cut off" in p.get("text", ""), timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(second.communicate(), 60)
    assert "left by a previous run" in output.decode()
