"""What users send as files (documents, photos, voice notes, audio files), taken from Telegram into a folder.

The one download path for every kind: the size limit, the Bot API's file fetch (HTTP, or a local path from a
self-hosted server), a temp file renamed when complete, safe names. Which folder, and what Claude is told, is app.py's.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiofiles
import httpx
from telegram import Message
from telegram.error import TelegramError

from claude_bridge.errors import BridgeError

logger = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 64 * 1024
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
Kind = Literal["photo", "document", "voice", "audio"]


@dataclass(frozen=True)
class Attachment:
    """A message's file: the PTB object to fetch (it has `file_size` and `get_file()`) and the name to save it as."""

    item: Any
    name: str
    kind: Kind


def attachment_of(message: Message) -> Attachment | None:
    """The message's file (a photo's largest size), named so that its type shows (transcription services need it)."""
    number = message.message_id
    if message.photo:
        return Attachment(message.photo[-1], f"photo-{number}.jpg", "photo")
    if message.document:
        return Attachment(message.document, message.document.file_name or f"file-{number}", "document")
    if message.voice:
        return Attachment(message.voice, f"voice-{number}.ogg", "voice")  # Telegram's voice notes are OGG/Opus
    if message.audio:
        extension = mimetypes.guess_extension(message.audio.mime_type or "") or ".mp3"
        return Attachment(message.audio, message.audio.file_name or f"audio-{number}{extension}", "audio")
    return None


class _TooBig(Exception):
    """The download passed the limit (Telegram gave no size, or a wrong one)."""


def too_big(limit: int, size: float | None = None) -> BridgeError:
    said = f"That file is {size / 2**20:.1f} MB; " if size else "That file is too big: "
    return BridgeError(
        f"{said}the bot can download at most {limit / 2**20:.0f} MB "
        "(Telegram's limit for bots; a self-hosted Bot API server allows more, see MAX_DOWNLOAD_MB). "
        "Nothing was sent to Claude."
    )


async def download(attachment: Attachment, limit: int, folder: Callable[[], Awaitable[Path]]) -> Path:
    """Stream the file into `folder()` (asked for only once the announced size fits) and return its path; a
    BridgeError saying why not otherwise. Past the limit the partial file is deleted, whatever Telegram announced."""
    if attachment.item.file_size and attachment.item.file_size > limit:
        raise too_big(limit, attachment.item.file_size)
    final = (await folder()) / unique_name(attachment.name)
    partial = final.with_name(f".{final.name}.part")
    try:
        async with aiofiles.open(partial, "wb") as handle:
            await _stream(attachment.item, handle.write, limit)
        partial.replace(final)
    except _TooBig:
        partial.unlink(missing_ok=True)
        raise too_big(limit) from None
    except (TelegramError, httpx.HTTPError, OSError) as exc:
        partial.unlink(missing_ok=True)
        logger.warning("download of a %s failed: %s", attachment.kind, exc)
        raise BridgeError(f"Could not download the file from Telegram: {exc}") from exc
    return final


async def _stream(item: Any, write: Callable[[bytes], Awaitable[Any]], limit: int) -> None:
    """Fetch an attachment chunk by chunk into `write`, counting bytes: raises _TooBig past `limit`."""
    telegram_file = await item.get_file()
    source = telegram_file.file_path or ""
    total = 0

    async def take(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)
        if total > limit:
            raise _TooBig
        await write(chunk)

    if Path(source).is_absolute():  # a self-hosted Bot API server in local mode
        async with aiofiles.open(source, "rb") as handle:
            while chunk := await handle.read(DOWNLOAD_CHUNK):
                await take(chunk)
        return
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT) as client, client.stream("GET", source) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
            await take(chunk)


def image_type(data: bytes) -> str | None:
    """The media type of an image Claude accepts, from its first bytes."""
    signatures = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF8": "image/gif"}
    for magic, media_type in signatures.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def unique_name(original: str) -> str:
    """A safe file name: no path parts, only [A-Za-z0-9._-], prefixed with a timestamp to be unique."""
    base = SAFE_NAME.sub("_", Path(original).name).strip("._") or "file"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}-{base[-100:]}"
