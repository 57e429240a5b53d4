"""One Bot API call's round trip from another process, as the bot makes it (PTB over httpx) and as a bare HTTP/1.1
request on a kept-alive socket: what the fake server and the loopback wire take, and what the client library adds.

Run by benchmark.py: `python bench/api_trip.py <url> <token> <runs> <gap>` prints {"raw": [s…], "ptb": [s…]} for calls
`gap` s apart, and "raw_now", "ptb_now" for calls back to back (what idle costs this machine shows in the difference).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from telegram import Bot
from telegram.constants import ChatAction
from telegram.request import HTTPXRequest

CHAT = 5  # any chat: the fake answers a chat action without checking it


async def raw_trips(url: str, token: str, runs: int, gap: float) -> list[float]:
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    body = json.dumps({"chat_id": CHAT, "action": "typing"}).encode()
    request = (
        f"POST /bot{token}/sendChatAction HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    samples = []
    for _ in range(runs + 1):
        await asyncio.sleep(gap)
        started = time.monotonic()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        sizes = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        length = int(sizes[0])
        await reader.readexactly(length)
        samples.append(time.monotonic() - started)
    writer.close()
    return samples[1:]


async def ptb_trips(url: str, token: str, runs: int, gap: float) -> list[float]:
    samples = []
    async with Bot(token, base_url=f"{url}/bot", request=HTTPXRequest()) as bot:
        for _ in range(runs + 1):
            await asyncio.sleep(gap)
            started = time.monotonic()
            await bot.send_chat_action(CHAT, ChatAction.TYPING)
            samples.append(time.monotonic() - started)
    return samples[1:]


def main() -> None:
    url, token, runs, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    trips = {
        "raw_now": asyncio.run(raw_trips(url, token, runs, 0.0)),
        "ptb_now": asyncio.run(ptb_trips(url, token, runs, 0.0)),
        "raw": asyncio.run(raw_trips(url, token, runs, gap)),
        "ptb": asyncio.run(ptb_trips(url, token, runs, gap)),
    }
    print(json.dumps(trips))


if __name__ == "__main__":
    main()
