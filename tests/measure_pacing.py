"""Prints how long answers take to reach the chat through the whole bot (fake Bot API with Telegram-like flood
limits ↔ real PTB ↔ real CLI ↔ instant fake Messages API), and how many 429s it drew. Prints, asserts nothing.

Run: `.venv/bin/python tests/measure_pacing.py`; with `BRIDGE_CODE=<dir>` the bot's code is taken from that
checkout instead (e.g. an export of an older commit), to compare.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [os.environ.get("BRIDGE_CODE") or str(HERE.parent), str(HERE)]

from bot_harness import OWNER, RunningBot, running_bot  # noqa: E402
from fake_anthropic import FakeAnthropic, Text  # noqa: E402
from fake_telegram import FakeBotAPI  # noqa: E402


async def answered(bot: RunningBot, text: str, needle: str, parts: int = 1) -> float:
    """Seconds from the user's message to the `parts`-th accepted message containing `needle`."""
    since = len(bot.tg.calls)
    started = time.monotonic()
    bot.tg.push_text(OWNER, text)
    for _ in range(parts):
        call = await bot.tg.wait_for(
            "sendMessage", lambda p: p["chat_id"] == OWNER and needle in p.get("text", ""), since=since, timeout=60
        )
        since = bot.tg.calls.index(call) + 1
    return time.monotonic() - started


async def measure(root: Path) -> None:
    async with FakeBotAPI() as tg, FakeAnthropic() as api:
        tg.enforce_telegram_limits()  # Telegram's documented limits (fake_telegram.TelegramLimits)
        async with running_bot(root, tg, api) as bot:
            await answered(bot, "warm up", "echo: warm up")  # spawns the CLI
            await asyncio.sleep(3)  # a full budget again
            follow_ups = [await answered(bot, f"follow-up {i}", f"echo: follow-up {i}") for i in range(3)]
            await asyncio.sleep(3)
            api.enqueue(Text("\n\n".join(f"Part {i}: " + "words " * 600 for i in range(3))))
            three_parts = await answered(bot, "a long one", "words", parts=3)
            await asyncio.sleep(3)
            started = time.monotonic()
            for i in range(3):  # sent at once: acknowledged as queued, answered one after another
                tg.push_text(OWNER, f"burst {i}")
            await bot.reply_containing("echo: burst 2", timeout=60)
            burst = time.monotonic() - started
        print(f"code: {os.environ.get('BRIDGE_CODE') or 'this worktree'}")
        print(
            "three quick follow-ups, message → answer: "
            + ", ".join(f"{s:.2f}" for s in follow_ups)
            + f" s (median {statistics.median(follow_ups):.2f} s)"
        )
        print(f"three-part answer, message → last part: {three_parts:.2f} s")
        print(f"three messages at once (2 'Queued' notes + 3 answers) → last answer: {burst:.2f} s")
        print(f"429s drawn: {tg.flood_rejections}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        asyncio.run(measure(Path(scratch)))
