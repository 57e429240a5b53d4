"""The one port a front end (Telegram, the console) gives the sessions, at construction: how what happens without a
message of the user's reaches a place — a notice, Claude's own turn, a file Claude sends, a question Claude asks.

Every call carries its Place (inside the delivery, the file or the prompt); the sessions never pick "the last chat".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from claude_bridge.errors import BridgeError
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.limits import Hold
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.sessions.worker import Delivery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaudeCommands:
    """What a session's `init` lists: its slash commands, skills and the commands that need a terminal."""

    slash_commands: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    terminal: tuple[str, ...] = ()


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

    def show_commands(self, place: Place, session: str, commands: ClaudeCommands) -> None:
        """The commands `session` offers (its `init`, or a /switch to it) for the place's menu, if it is the
        place's active session; called on every `init`, so an unchanged menu is the front end's to skip."""

    async def show_limit(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        """The place's one usage-limit message for `hold` (with a Cancel button while held): sent when `message_id`
        is None, else that message edited to the hold's new state. Returns the message's id, if it has one."""

    async def warn_limit(self, place: Place, limit: RateLimit) -> None:
        """A usage warning (the plan is nearly used up), shown quietly; the sessions send it once per window."""


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

    def show_commands(self, place: Place, session: str, commands: ClaudeCommands) -> None:
        logger.debug("no front end to show the commands of session %s", session)

    async def show_limit(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        logger.warning("no front end to tell %s: usage limit %s until %s", place.key, hold.state, hold.until)
        return None

    async def warn_limit(self, place: Place, limit: RateLimit) -> None:
        logger.warning("no front end to warn %s: usage %s", place.key, limit.status)
