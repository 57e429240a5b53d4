"""Claude sends files to the chat through the bot's own send_file tool (real CLI, real PTB over the fake Bot API)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot_harness import OWNER, RunningBot, running_bot
from fake_anthropic import FakeAnthropic
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.real_cli
SEND_FILE = "mcp__telegram__send_file"


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


@pytest_asyncio.fixture
async def bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[RunningBot]:
    async with running_bot(tmp_path, tg, api, MAX_UPLOAD_MB="1") as running:
        yield running


async def warm_up(bot: RunningBot) -> Path:
    """The first message creates the session; returns Claude's working folder."""
    bot.tg.push_text(OWNER, "hello")
    await bot.reply_containing("echo: hello")
    return bot.settings.sessions_dir / "default"


async def test_a_text_file_arrives_as_a_document_with_identical_bytes_and_the_caption(bot, tg, api):
    workspace = await warm_up(bot)
    content = "line one\nline two — ünïcode\n".encode() * 50
    (workspace / "report.txt").write_bytes(content)
    api.enqueue(ScriptedTool(SEND_FILE, {"path": "report.txt", "caption": "the weekly report"}))

    tg.push_text(OWNER, "send me the report")
    await bot.reply_containing("tool said: Sent report.txt", timeout=60)

    [message] = [m for m in tg.messages(OWNER) if m.document is not None]
    assert message.document.content == content and message.caption == "the weekly report"
    assert message.document.file_name == "report.txt"


async def test_a_png_arrives_as_a_photo(bot, tg, api):
    workspace = await warm_up(bot)
    (workspace / "plot.png").write_bytes(tiny_png())
    api.enqueue(ScriptedTool(SEND_FILE, {"path": str(workspace / "plot.png")}))

    tg.push_text(OWNER, "show me the plot")
    await bot.reply_containing("as a photo", timeout=60)

    [message] = [m for m in tg.messages(OWNER) if m.photo is not None]
    assert message.photo.content == tiny_png()


async def test_a_missing_and_an_oversized_file_are_clear_tool_errors_and_nothing_is_sent(bot, tg, api):
    workspace = await warm_up(bot)
    (workspace / "huge.bin").write_bytes(b"\0" * (1024 * 1024 + 1))
    api.enqueue(ScriptedTool(SEND_FILE, {"path": "nowhere.txt"}))
    tg.push_text(OWNER, "send the missing one")
    await bot.reply_containing("tool said: No such file", timeout=60)
    missing = api.requests[-1].tool_results[0]

    api.enqueue(ScriptedTool(SEND_FILE, {"path": "huge.bin"}))
    tg.push_text(OWNER, "send the huge one")
    await bot.reply_containing("tool said: huge.bin is 1.0 MB, larger than", timeout=60)
    oversized = api.requests[-1].tool_results[0]

    assert missing.is_error and oversized.is_error
    assert not [m for m in tg.messages(OWNER) if m.document is not None or m.photo is not None]
    assert not tg.calls_to("sendDocument") and not tg.calls_to("sendPhoto")
