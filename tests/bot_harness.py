"""The whole bot, for end-to-end tests: fake Bot API ↔ real PTB Application ↔ SessionManager ↔ real CLI ↔ fake
Messages API. Only the two HTTP services at the edges are fakes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_bridge.sessions.manager import SessionManager
from claude_bridge.settings import Settings, load_settings
from claude_bridge.telegram import app as telegram_app
from claude_bridge.telegram.gate import ALLOWED_UPDATES
from conftest import ROOT, cli_env, real_cli_path
from fake_anthropic import FakeAnthropic
from fake_telegram import BotMessage, FakeBotAPI
from session_manager import build_manager

OWNER = 111
STRANGER = 999


def bot_env(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, **extra: str | None) -> dict[str, str]:
    """Every setting the bot reads, pointed at the fakes and the test's own directories (None in `extra` removes
    one, e.g. ANTHROPIC_API_KEY for a subscription login)."""
    env = cli_env(tmp_path, api.url)
    env.update(
        TELEGRAM_BOT_TOKEN=tg.token,
        ALLOWED_USER_IDS=str(OWNER),
        TELEGRAM_API_BASE_URL=tg.url,
        SESSIONS_DIR=str(tmp_path / "sessions"),
        PERSONAS_DIR=str(ROOT / "personas"),
        CLAUDE_BIN=str(real_cli_path()),
    )
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class RunningBot:
    tg: FakeBotAPI
    api: FakeAnthropic
    settings: Settings
    manager: SessionManager
    app: Any

    def texts(self, chat_id: int = OWNER) -> list[str]:
        """What the user sees in the chat now (deleted messages left out)."""
        return [m.text or m.caption or "" for m in self.tg.messages(chat_id) if not m.deleted]

    def visible(self, chat_id: int = OWNER) -> list[BotMessage]:
        return [m for m in self.tg.messages(chat_id) if not m.deleted]

    async def reply_containing(self, needle: str, chat_id: int = OWNER, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for an accepted sendMessage to the chat whose text contains `needle`."""
        call = await self.tg.wait_for(
            "sendMessage",
            lambda p: p.get("chat_id") == chat_id and needle in str(p.get("text", "")),
            timeout=timeout,
        )
        return call.params


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, claude_bin: Path | None = None, **extra: str | None
) -> AsyncIterator[RunningBot]:
    """Start the bot the way run_polling does (post_init, polling …) and stop it the same way.

    `claude_bin`: another CLI (e.g. the stand-in of fake_claude_helper.make_fake_cli) instead of the real one."""
    settings = load_settings(bot_env(tmp_path, tg, api, **extra), dotenv_path=None)
    app = telegram_app.build_application(
        settings, lambda front_end: build_manager(settings, claude_bin or real_cli_path(), front_end)
    )
    manager = app.bot_data["state"].manager
    await app.initialize()
    await telegram_app.post_init(app)
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=ALLOWED_UPDATES)
    try:
        yield RunningBot(tg, api, settings, manager, app)
    finally:
        if app.updater.running:  # a reload stops it before its exec
            await app.updater.stop()
        await app.stop()
        await telegram_app.post_stop(app)
        await app.shutdown()
        await telegram_app.post_shutdown(app)
