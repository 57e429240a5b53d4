"""Shared fixtures: where the real Claude Code CLI is, and a clean environment for it per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLI = ROOT / ".tools/claude-code/node_modules/@anthropic-ai/claude-code-linux-x64/claude"


def real_cli_path() -> Path:
    """The pinned CLI that `make test` installs (or CLAUDE_TEST_BIN)."""
    path = Path(os.environ.get("CLAUDE_TEST_BIN") or DEFAULT_CLI)
    if not path.exists():
        raise RuntimeError(f"Claude Code CLI not installed at {path}; run `make test` (it installs it)")
    return path


@pytest.fixture
def claude_bin() -> Path:
    return real_cli_path()


def cli_env(tmp_path: Path, api_url: str) -> dict[str, str]:
    """Environment for one real CLI run: a private config dir, pointed at a fake Messages API."""
    config_dir = tmp_path / "claude-config"
    config_dir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(
        ANTHROPIC_BASE_URL=api_url,
        ANTHROPIC_API_KEY="sk-test-fake",
        IS_SANDBOX="1",
        CLAUDE_CONFIG_DIR=str(config_dir),
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_MAX_RETRIES="1",
    )
    return env


@pytest_asyncio.fixture
async def tg() -> AsyncIterator[FakeBotAPI]:
    """A fake Telegram Bot API on loopback."""
    async with FakeBotAPI() as server:
        yield server


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    """A fake Anthropic Messages API on loopback."""
    async with FakeAnthropic() as server:
        yield server
