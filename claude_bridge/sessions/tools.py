"""The tools the bot serves to Claude in-process (one registry; each tool a small function with its schema).

`send_file` checks the file on this machine (file_policy: the session's own folder is sent, anything else is asked,
the bot's secrets never) and hands it to whatever front end delivers files (Telegram); the tool answers Claude only
when the front end says the chat has it. No Telegram here: the sink and the way to ask are given.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_bridge.errors import BridgeError
from claude_bridge.protocol.mcp import Tool, ToolOutcome, qualified_name
from claude_bridge.sessions.file_policy import Judgement, Protected, Verdict, judge, secret_in
from claude_bridge.sessions.place import Place

logger = logging.getLogger(__name__)

PHOTO_LIMIT = 10 * 1024 * 1024  # Telegram's sendPhoto limit; bigger images go as documents
CAPTION_LIMIT = 1024
_PHOTO_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".webp": (b"RIFF",),
}

SYSTEM_PROMPT = (
    "The user talks to you through a Telegram bot, usually on a phone, and cannot see this machine's files. "
    "To give them a file (a plot, a log, a PDF, an archive, code), call the tool mcp__telegram__send_file with its "
    "path (absolute, or relative to the working folder) and an optional caption; it arrives in their chat."
)


@dataclass(frozen=True)
class OutgoingFile:
    """A file on its way to a chat: a photo when Telegram can show it as one, else a document."""

    chat_id: int
    path: Path
    caption: str
    as_photo: bool
    size: int
    thread_id: int | None = None  # the forum topic it goes to


FileSink = Callable[[OutgoingFile], Awaitable[None]]
# Ask the human whether a tool may go on (the tool's qualified name, its input, the reason): True when allowed.
AskHuman = Callable[[str, Mapping[str, Any], str], Awaitable[bool]]
SKIPS_ASKING = "bypassPermissions"  # the mode in which no tool call is asked, so neither is send_file


@dataclass
class ToolContext:
    """What the tools of one session need: its folder, where its answers go, how files get there, what is whose."""

    cwd: Path
    place: Callable[[], Place | None]  # the place of the turn that runs now
    sink: FileSink
    upload_limit: int
    own: Sequence[Path] = ()  # the session's own folders (workspace, files/): sent without asking
    protected: Protected = field(default_factory=Protected)
    ask: AskHuman | None = None
    mode: Callable[[], str] = lambda: "default"


def session_tools(context: ToolContext) -> list[Tool]:
    """Every tool the bot serves to a session's Claude."""
    return [send_file_tool(context)]


def send_file_tool(context: ToolContext) -> Tool:
    """`send_file(path, caption?)`: send a file from this machine to the user's chat."""

    async def run(arguments: Mapping[str, Any]) -> ToolOutcome:
        return await send_file(context, arguments)

    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "The file: absolute, or relative to the working folder."},
            "caption": {"type": "string", "description": "Optional text shown under the file (up to 1024 chars)."},
        },
        "required": ["path"],
        "additionalProperties": False,
    }
    description = (
        "Send a file from this machine to the user's Telegram chat (images as photos, anything else as a document). "
        "Returns when Telegram has the file."
    )
    return Tool("send_file", description, schema, run)


async def send_file(context: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
    """Check the file, then deliver it; every refusal is a clear tool error and nothing is sent."""
    raw_path, caption = arguments.get("path"), arguments.get("caption") or ""
    if not isinstance(raw_path, str) or not raw_path.strip():
        return ToolOutcome("send_file needs a `path` (a string).", is_error=True)
    if not isinstance(caption, str):
        return ToolOutcome("`caption` must be a string.", is_error=True)
    checked = await asyncio.to_thread(_inspect, context, raw_path)
    if isinstance(checked, str):
        return ToolOutcome(checked, is_error=True)
    judgement, size, as_photo = checked
    path = judgement.path
    refusal = await _permission(context, judgement, caption)
    if refusal:
        return ToolOutcome(refusal, is_error=True)
    place, sink = context.place(), context.sink
    if place is None:
        return ToolOutcome("No chat to send to: nobody has written to this session from Telegram yet.", is_error=True)
    note = ""
    if len(caption) > CAPTION_LIMIT:
        caption, note = caption[: CAPTION_LIMIT - 1] + "…", f" The caption was cut to {CAPTION_LIMIT} characters."
    outgoing = OutgoingFile(place.chat_id, path, caption, as_photo, size, place.thread_id)
    try:
        await sink(outgoing)
    except (BridgeError, OSError) as exc:
        return ToolOutcome(f"Telegram did not take the file: {exc}", is_error=True)
    kind = "photo" if outgoing.as_photo else "document"
    logger.info("sent %s (%d bytes) to chat %s as a %s", path.name, size, place.key, kind)
    return ToolOutcome(f"Sent {path.name} ({_size(size)}) to the user's chat as a {kind}.{note}")


async def _permission(context: ToolContext, judgement: Judgement, caption: str) -> str:
    """Why the file may not go ("" when it may): a file outside the session's folder is asked like a tool call."""
    if judgement.verdict != Verdict.ASK or context.mode() == SKIPS_ASKING:
        return ""
    if context.ask is None:
        return f"{judgement.reason}, and there is nobody to ask; the file was not sent."
    asked = {"path": str(judgement.path)} | ({"caption": caption} if caption else {})
    logger.info("send_file asks before sending %s (outside the session's folder)", judgement.path)
    if await context.ask(qualified_name("send_file"), asked, f"{judgement.reason}; send it to the chat?"):
        return ""
    return f"The user did not allow sending {judgement.path} ({judgement.reason}); nothing was sent."


def _inspect(context: ToolContext, raw_path: str) -> tuple[Judgement, int, bool] | str:
    """The verdict on the resolved path, its size and whether it goes as a photo; or why it cannot be sent.

    Symlinks are resolved first, so `../../.env` or a link to it is judged as the file it is.
    """
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = context.cwd / path
    problem = _check(path, context.upload_limit)
    if problem:
        return problem
    judgement = judge(path.resolve(strict=True), context.own, context.protected)
    if judgement.verdict == Verdict.NEVER:
        return judgement.reason
    try:
        if secret_in(judgement.path, context.protected.secrets):
            return f"{judgement.path} holds the bot's token or TRANSCRIBE_API_KEY; the bot never sends it."
    except OSError as exc:
        return f"Cannot read {judgement.path}: {exc.strerror or exc}"
    size = judgement.path.stat().st_size
    return judgement, size, _is_photo(judgement.path, size)


def _check(path: Path, limit: int) -> str:
    try:
        status = path.stat()
    except FileNotFoundError:
        return f"No such file: {path}"
    except OSError as exc:
        return f"Cannot read {path}: {exc.strerror or exc}"
    if not path.is_file():
        return f"Not a regular file: {path}"
    if not os.access(path, os.R_OK):
        return f"Cannot read {path}: permission denied"
    if status.st_size == 0:
        return f"{path.name} is empty; Telegram does not send empty files."
    if status.st_size > limit:
        return (
            f"{path.name} is {_size(status.st_size)}, larger than the {_size(limit)} a bot may upload to Telegram "
            "(a self-hosted Bot API server allows up to 2000 MB). Compress or split it, or send a smaller file."
        )
    return ""


def _is_photo(path: Path, size: int) -> bool:
    magics = _PHOTO_MAGIC.get(path.suffix.lower())
    if not magics or size > PHOTO_LIMIT:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    if path.suffix.lower() == ".webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return any(head.startswith(magic) for magic in magics)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"
