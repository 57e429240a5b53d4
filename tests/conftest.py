"""Shared fixtures: where the real Claude Code CLI is, and a clean environment for it per test."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from cli_install import cli_binary
from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


def makefile_version(name: str) -> str:
    """A CLI version the Makefile names (CLAUDE_CODE_VERSION, CLAUDE_CODE_OLDEST_TESTED): the one place they live."""
    found = re.search(rf"^{name}\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, f"{name} is not set in the Makefile"
    return found[1]


def installed_cli(version: str) -> Path:
    """Where `make cli CLAUDE_CODE_VERSION=<version>` installed that version's binary for this machine."""
    prefix = ROOT / f".tools/claude-code-{version}"
    try:
        return cli_binary(prefix)
    except FileNotFoundError:
        return prefix / "node_modules/.bin/claude"  # not installed: real_cli_path() says so with this path


def real_cli_path() -> Path:
    """The CLI that `make test` installs and names in CLAUDE_TEST_BIN (default: the Makefile's pinned version)."""
    path = Path(os.environ.get("CLAUDE_TEST_BIN") or installed_cli(makefile_version("CLAUDE_CODE_VERSION")))
    if not path.exists():
        raise RuntimeError(f"Claude Code CLI not installed at {path}; run `make test` (it installs it)")
    return path


@functools.cache
def real_cli_version() -> tuple[int, ...]:
    """The real CLI's version as numbers, (2, 1, 332); () when it is not installed (collection must not fail)."""
    try:
        answer = subprocess.run([real_cli_path(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return ()
    found = re.match(r"\s*(\d+(?:\.\d+)*)", answer)
    return tuple(int(part) for part in found[1].split(".")) if found else ()




@pytest.fixture
def claude_bin() -> Path:
    return real_cli_path()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `fast` marker is kept by hand on each file: refuse a fast test that starts the real CLI. Then the order the
    tests run in: started_early."""
    wrong = [
        item.nodeid
        for item in items
        if item.get_closest_marker("fast")
        and (item.get_closest_marker("real_cli") or "claude_bin" in getattr(item, "fixturenames", ()))
    ]
    if wrong:
        raise pytest.UsageError("marked fast but runs the real CLI: " + ", ".join(wrong))
    items.sort(key=started_early)


# The files that hold a test of a minute or more (a forum topic's pacing of 20 messages a minute, a schedule or the
# CLI's own cron that runs once a minute): a parallel run that started them late would end waiting for one of them.
LONGEST = (
    "test_claude_schedules_e2e.py",
    "test_rules_e2e.py",
    "test_schedules_e2e.py",
    "test_reload_claude_turns_e2e.py",
)


def started_early(item: pytest.Item) -> tuple[bool, bool]:
    """The order `make test` runs in (a stable sort keeps each file's own): the longest files, the other tests that
    wait (real CLI, timers), then the in-process `fast` ones, which fill the end of a parallel run (pytest-xdist
    hands out tests one by one in this order: `--maxschedchunk 1` in the Makefile)."""
    return bool(item.get_closest_marker("fast")), item.path.name not in LONGEST


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
        # A shell profile running `pyenv init` rehashes in every Bash tool shell; a shell killed mid-rehash (these
        # tests kill process trees) leaves a lock that makes every later shell wait 60 s for it. Wait 1 s at most.
        PYENV_REHASH_TIMEOUT="1",
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
