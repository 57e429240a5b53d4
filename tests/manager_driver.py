"""The bot minus Telegram, as its own process: a real SessionManager (bot.build_manager) a test can SIGKILL.

Settings come from the environment as for the bot (SESSIONS_DIR, PERSONAS_DIR, CLAUDE_BIN, ANTHROPIC_*); the
repository root must be on PYTHONPATH. Each event is one flushed line on stdout, so the test can follow along:

    python manager_driver.py send MESSAGE...   ACCEPTED <i> once send() returned (the message is fsynced in the
                                               inbox), then NOTICE <text> / ANSWER <text> as each turn is drained
    python manager_driver.py recover           what the bot does at start (reap leftovers, recover), printing
                                               NOTICE <text> for each notice and ANSWER <text> per re-delivery

Both print DONE after close_all(). Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from claude_bridge.protocol.events import TurnResult
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.frontend import Unattended
from claude_bridge.sessions.limits import Hold
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.sessions.worker import Delivery, Notice
from claude_bridge.settings import find_claude, load_settings
from session_manager import build_manager

CHAT = 1


def say(kind: str, text: str = "") -> None:
    """One event per line, flushed at once: the test may kill us right after reading it."""
    print(f"{kind} {' '.join(text.split())}".rstrip(), flush=True)


class Printed(Unattended):
    """The front end: every notice is one NOTICE line (what else the port shows, e.g. a menu, only logged)."""

    async def notify(self, place: Place, text: str) -> None:
        say("NOTICE", text)

    def show_claude_turn(self, delivery: Delivery) -> None:
        say("NOTICE", f"Claude's own turn: {delivery.header}")

    async def send_file(self, outgoing: OutgoingFile) -> None:
        say("NOTICE", f"file {outgoing.path}")

    def show_prompt(self, prompt: Prompt) -> None:
        say("NOTICE", f"prompt {prompt.id}")

    async def show_limit(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        say("NOTICE", f"usage limit {hold.state} until {hold.until}")
        return None

    async def warn_limit(self, place: Place, limit: RateLimit) -> None:
        say("NOTICE", f"usage warning {limit.status}")


async def drain(delivery: Delivery) -> None:
    async for event in delivery.events():
        if isinstance(event, Notice):
            say("NOTICE", event.text)
        elif isinstance(event, TurnResult):
            say("ANSWER", event.text)


async def main(mode: str, messages: list[str]) -> None:
    settings = load_settings(None, dotenv_path=None, require_telegram=False)
    manager = build_manager(settings, find_claude(settings.claude_bin, settings.env), Printed())
    try:
        if mode == "send":
            deliveries = []
            for index, text in enumerate(messages):
                deliveries.append(await manager.send(CHAT, text))
                say("ACCEPTED", str(index))
        else:
            manager.reap_leftovers()
            deliveries = await manager.recover()
        for delivery in deliveries:
            await drain(delivery)
    finally:
        await manager.close_all()
    say("DONE")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("send", "recover"):
        sys.exit(__doc__)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
