"""A message with a slow first step (a voice note's transcription) still reaches Claude before later ones."""

from __future__ import annotations

import asyncio

import pytest

from claude_bridge.telegram.intake import InOrder

pytestmark = pytest.mark.fast


async def test_a_later_quick_message_waits_for_an_earlier_slow_one() -> None:
    line, handed = InOrder(), []
    transcribed = asyncio.Event()

    async def voice_note() -> None:
        async with line.place_in_line("chat") as hand_over:
            await transcribed.wait()  # the slow part runs while the text below arrives
            await hand_over(lambda: asyncio.sleep(0, handed.append("voice")))

    async def text() -> None:
        async with line.place_in_line("chat") as hand_over:
            await hand_over(lambda: asyncio.sleep(0, handed.append("text")))

    slow = asyncio.create_task(voice_note())
    await asyncio.sleep(0)
    quick = asyncio.create_task(text())
    await asyncio.sleep(0)
    assert handed == []  # the text waits for the voice note ahead of it
    transcribed.set()
    await asyncio.gather(slow, quick)

    assert handed == ["voice", "text"] and len(line) == 0


async def test_a_failed_message_lets_the_next_one_go_and_other_chats_never_wait() -> None:
    line, handed = InOrder(), []

    async def failing() -> None:
        async with line.place_in_line("a"):
            raise RuntimeError("download failed")

    first = asyncio.create_task(failing())
    async with line.place_in_line("b") as hand_over:
        await hand_over(lambda: asyncio.sleep(0, handed.append("b")))
    async with line.place_in_line("a") as hand_over:
        await hand_over(lambda: asyncio.sleep(0, handed.append("a")))

    assert handed == ["b", "a"] and first.done() and isinstance(first.exception(), RuntimeError)
