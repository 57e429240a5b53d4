"""The one port a front end (Telegram, the console) gives the sessions, at construction: how what happens without a
message of the user's reaches a place — a notice, Claude's own turn, a file Claude sends, a question Claude asks.

Every call carries its Place (inside the delivery, the file or the prompt); the sessions never pick "the last chat".
"""

from __future__ import annotations

import logging
from typing import Protocol

from claude_bridge.errors import BridgeError
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.sessions.worker import Delivery

logger = logging.getLogger(__name__)


class FrontEnd(Protocol):
    """What a front end shows for the sessions, outside the deliveries it asked for itself."""

    async def notify(self, place: Place, text: str) -> None:
        """A notice for a chat (or topic): a crashed process restarted, background tasks were stopped, …"""

    def show_claude_turn(self, delivery: Delivery) -> None:
        """A turn Claude started by itself (its delivery has a `header` and the place it belongs to)."""

    async def send_file(self, outgoing: OutgoingFile) -> None:
        """A file Claude sends (send_file) to its place; returns once it is delivered, raises BridgeError if not."""

    def show_prompt(self, prompt: Prompt) -> None:
        """A question of Claude's for the human (a permission, a question, a plan) opened or changed in its place."""


class Unattended:
    """No front end (a script, a test): everything that would be shown is logged instead."""

    async def notify(self, place: Place, text: str) -> None:
        logger.warning("no front end to tell %s: %s", place.key, text)

    def show_claude_turn(self, delivery: Delivery) -> None:
        logger.warning("no front end to show Claude's own turn in %s: %s", delivery.place.key, delivery.header)

    async def send_file(self, outgoing: OutgoingFile) -> None:
        raise BridgeError("there is no chat front end to send files to")

    def show_prompt(self, prompt: Prompt) -> None:
        logger.warning("no front end to show prompt %s of session %s", prompt.id, prompt.session)
