"""`python bot.py doctor` as a user runs it, against the fake Bot API and the real CLI: a ✓ or a ✗ with a hint."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot_harness import bot_env
from claude_bridge.doctor import OLDEST_TESTED_CLI, parse_version
from conftest import ROOT, makefile_version
from fake_anthropic import FakeAnthropic, HttpError
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.real_cli


@dataclass
class Report:
    """What the doctor printed and how it exited."""

    code: int
    output: str

    @property
    def checks(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(("✓", "✗"))]

    @property
    def failed(self) -> list[str]:
        return [line for line in self.checks if line.startswith("✗")]

    def line_about(self, needle: str) -> str:
        """The one check line that mentions `needle`."""
        matches = [line for line in self.checks if needle in line]
        assert len(matches) == 1, f"expected one line about {needle!r} in:\n{self.output}"
        return matches[0]


async def doctor(tmp_path: Path, env: dict[str, str], *args: str) -> Report:
    """Run the doctor in tmp_path (so no developer's .env is read) and wait for its report."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        "doctor",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode is not None
    return Report(process.returncode, output.decode())


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_a_working_setup_passes_every_check_and_spends_no_tokens(tmp_path, tg: FakeBotAPI, api: FakeAnthropic):
    report = await doctor(tmp_path, bot_env(tmp_path, tg, api))

    assert report.code == 0, report.output
    assert report.failed == []
    assert "the bot is @fake_bot" in report.line_about("Telegram")
    assert "(Claude Code)" in report.line_about("Claude Code version")
    assert "brainstorm, default, planner, research" in report.line_about("personas")
    assert report.line_about("sessions directory").endswith("is writable")
    assert (tmp_path / "sessions").is_dir()
    assert tg.calls_to("getMe") and not api.requests
    assert tg.token not in report.output


async def test_a_missing_cli_is_named_with_how_to_install_it(tmp_path, tg, api):
    env = bot_env(tmp_path, tg, api, CLAUDE_BIN=str(tmp_path / "nowhere/claude"))

    report = await doctor(tmp_path, env)

    assert report.code == 1
    line = report.line_about("Claude Code CLI not found")
    assert "nowhere/claude" in line and "npm install -g @anthropic-ai/claude-code" in line
    assert "Claude Code version" not in report.output
    assert report.line_about("Telegram").startswith("✓")


async def test_without_a_token_it_says_how_to_get_one_and_checks_the_rest(tmp_path, tg, api):
    report = await doctor(tmp_path, without(bot_env(tmp_path, tg, api), "TELEGRAM_BOT_TOKEN"))

    assert report.code == 1
    assert report.failed == [report.line_about("TELEGRAM_BOT_TOKEN")]
    assert "is not set — " in report.failed[0] and "@BotFather" in report.failed[0]
    assert report.line_about("Claude Code CLI found").startswith("✓")
    assert not tg.calls_to("getMe")


async def test_a_token_telegram_rejects_points_to_botfather_without_printing_it(tmp_path, tg, api):
    env = bot_env(tmp_path, tg, api, TELEGRAM_BOT_TOKEN="pasted-the-wrong-thing")

    report = await doctor(tmp_path, env)

    assert report.code == 1
    assert report.failed == [report.line_about("rejected TELEGRAM_BOT_TOKEN")]
    assert "@BotFather" in report.failed[0]
    assert "pasted-the-wrong-thing" not in report.output


async def test_an_unreachable_telegram_is_a_connectivity_problem(tmp_path, tg, api):
    env = bot_env(tmp_path, tg, api, TELEGRAM_API_BASE_URL=closed_port_url())

    report = await doctor(tmp_path, env)

    assert report.code == 1
    line = report.line_about("is not reachable")
    assert line.startswith("✗") and "TELEGRAM_API_BASE_URL" in line and "connection" in line


async def test_a_broken_persona_and_an_unwritable_sessions_folder_are_each_named(tmp_path, tg, api):
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "default.json").write_text((ROOT / "personas/default.json").read_text())
    (personas / "typo.json").write_text('{"name": "typo", "system_prompt": 42}')
    (tmp_path / "a-file").write_text("not a folder")
    env = bot_env(tmp_path, tg, api, PERSONAS_DIR=str(personas), SESSIONS_DIR=str(tmp_path / "a-file/sessions"))

    report = await doctor(tmp_path, env)

    assert report.code == 1
    assert len(report.failed) == 2
    assert "'system_prompt' must be a string" in report.line_about("typo.json")
    assert "SESSIONS_DIR" in report.line_about("is not writable")


async def test_settings_that_cannot_load_exit_2_with_each_problem(tmp_path, tg, api):
    env = bot_env(tmp_path, tg, api, ALLOWED_USER_IDS="alice", MAX_LIVE_SESSIONS="lots")

    report = await doctor(tmp_path, env)

    assert report.code == 2
    assert report.line_about("'alice' is not a numeric Telegram user id").startswith("✗")
    assert report.line_about("MAX_LIVE_SESSIONS='lots' is not a number").startswith("✗")
    assert "Traceback" not in report.output


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused skip-permissions")
async def test_root_without_is_sandbox_is_refused_with_the_way_out(tmp_path, tg, api):
    # The shipped personas ask first; a persona that skips permissions is a deliberate choice, named in the report.
    personas = tmp_path / "personas"
    personas.mkdir()
    skipping = {"name": "yolo", "system_prompt": "", "settings": {"permission_mode": "bypassPermissions"}}
    (personas / "yolo.json").write_text(json.dumps(skipping))
    env = without(bot_env(tmp_path, tg, api), "IS_SANDBOX") | {"PERSONAS_DIR": str(personas)}
    report = await doctor(tmp_path, env)

    assert report.code == 1
    line = report.line_about("running as root")
    assert line.startswith("✗") and "yolo" in line and "normal user" in line and "IS_SANDBOX=1" in line


async def test_turn_runs_one_tiny_real_turn(tmp_path, tg, api):
    report = await doctor(tmp_path, bot_env(tmp_path, tg, api), "--turn")

    assert report.code == 0, report.output
    assert "“echo: Reply with the single word: pong”" in report.line_about("a real turn answered")
    assert [r.last_user_text for r in api.requests] == ["Reply with the single word: pong"]


async def test_a_turn_the_api_refuses_says_how_to_log_in(tmp_path, tg, api):
    api.enqueue(HttpError(401, "invalid x-api-key"), HttpError(401, "invalid x-api-key"))

    report = await doctor(tmp_path, bot_env(tmp_path, tg, api), "--turn")

    assert report.code == 1
    line = report.line_about("a real turn failed")
    assert "api key" in line.lower() and "ANTHROPIC_API_KEY" in line


def stand_in_cli(tmp_path: Path, version_answer: str) -> Path:
    """A `claude` that only answers --version, the way an old install would."""
    script = tmp_path / "bin/claude"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho '{version_answer}'\n")
    script.chmod(0o755)
    return script


async def test_a_cli_older_than_the_oldest_tested_says_how_to_update(tmp_path, tg, api):
    env = bot_env(tmp_path, tg, api, CLAUDE_BIN=str(stand_in_cli(tmp_path, "2.0.76 (Claude Code)")))

    report = await doctor(tmp_path, env)

    assert report.code == 1
    line = report.line_about("Claude Code version 2.0.76")
    assert line.startswith("✗") and f"older than {OLDEST_TESTED_CLI}" in line
    assert "npm install -g @anthropic-ai/claude-code@latest" in line


async def test_the_oldest_tested_cli_itself_passes(tmp_path, tg, api):
    env = bot_env(tmp_path, tg, api, CLAUDE_BIN=str(stand_in_cli(tmp_path, f"{OLDEST_TESTED_CLI} (Claude Code)")))

    report = await doctor(tmp_path, env)

    assert report.line_about("Claude Code version").startswith("✓"), report.output


def test_doctor_and_readme_name_the_versions_the_makefile_tests():
    oldest, newest = makefile_version("CLAUDE_CODE_OLDEST_TESTED"), makefile_version("CLAUDE_CODE_VERSION")
    readme = (ROOT / "README.md").read_text()

    assert oldest == OLDEST_TESTED_CLI
    assert parse_version(oldest) < parse_version(newest)
    assert f"Claude Code {oldest}" in readme and f"Claude Code {newest}" in readme
