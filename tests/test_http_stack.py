"""The Bot API client's own cost per call: PTB's httpx stack must not search the disk for a module on every request.

httpcore 1.0 imports sniffio inside each request; without sniffio installed every import fails, Python does not cache
a failed import, and each Bot API call pays a search of sys.path (~0.5 ms of CPU; encode/httpcore#1103).
"""

from __future__ import annotations

import importlib.machinery
from typing import Any

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from fake_telegram import FakeBotAPI

pytestmark = pytest.mark.fast


async def test_a_bot_api_call_imports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    searched: list[str] = []
    find_spec = importlib.machinery.PathFinder.find_spec

    def counting(name: str, path: Any = None, target: Any = None) -> Any:
        searched.append(name)
        return find_spec(name, path, target)

    async with FakeBotAPI() as tg, Bot(tg.token, base_url=f"{tg.url}/bot", request=HTTPXRequest()) as bot:
        await bot.send_chat_action(5, "typing")  # the first call may import what the stack needs once
        monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", counting)
        for _ in range(3):
            await bot.send_chat_action(5, "typing")

    assert searched == []
