"""Voice notes and audio files: saved in the session's files/, transcribed (claude_bridge.voice), shown quoted
with 🎤 and sent to Claude as the user's message. Downloading, saving and submitting are app.py's, passed in.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import MessageEntity, Update
from telegram.ext import ContextTypes, MessageHandler, filters

from claude_bridge.errors import TranscriptionError
from claude_bridge.settings import TranscribeSettings
from claude_bridge.telegram.render import MAX_UNITS, Chunk, utf16_len
from claude_bridge.telegram.streaming import Sender
from claude_bridge.voice import transcribe

logger = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
HOW_TO_TURN_ON = (
    "To turn voice notes on, set TRANSCRIBE_URL in the bot's .env and restart it: the base URL of an "
    "OpenAI-compatible speech-to-text API (e.g. https://api.openai.com/v1 with TRANSCRIBE_API_KEY, Groq, or a "
    "local faster-whisper or whisper.cpp server), or `local` to transcribe on this machine with faster-whisper. "
    "README.md, Voice notes, has the details."
)


@dataclass(frozen=True)
class Borrowed:
    """What this handler reuses from app.py; passed in so that imports run one way (app → voice)."""

    download: Callable[[Update, Context, Any], Awaitable[bytes | None]]
    save: Callable[[Update, Context, str, bytes], Awaitable[Path]]
    submit: Callable[[Update, Context, str], Awaitable[None]]
    sender_for: Callable[[Context, Update], Sender]  # the update's chat and forum topic
    in_line: Callable[[Update, Context], Any]  # the message's place in its chat's line to Claude (intake.InOrder)


def voice_handler(settings: TranscribeSettings, borrowed: Borrowed) -> MessageHandler[Any, None]:
    """The handler for voice notes and audio files."""

    async def on_voice(update: Update, context: Context) -> None:
        """Save the audio, transcribe it, show the transcript and hand it to Claude; say why when that fails."""
        message, chat = update.effective_message, update.effective_chat
        assert message is not None and chat is not None
        sender = borrowed.sender_for(context, update)

        async def reply(text: str) -> None:
            with contextlib.suppress(Exception):
                await sender.text(text, reply_to=message.message_id)

        item: Any = message.voice or message.audio
        if item is None:
            return
        async with borrowed.in_line(update, context) as hand_over:  # later texts wait for this note
            data = await borrowed.download(update, context, item)
            if data is None:
                return
            name = audio_name(message.message_id, message.voice is None, item)
            path = await borrowed.save(update, context, name, data)
            where = f"{path.parent.name}/{path.name} in session “{path.parent.parent.name}”"
            if not settings.enabled:
                await reply(f"🎤 Voice notes are off, so this one was not sent to Claude. It is saved as {where}.\n\n"
                            + HOW_TO_TURN_ON)
                return
            try:
                text = await transcribe(data, path.name, settings)
            except TranscriptionError as exc:
                logger.warning("chat %s: transcription failed: %s", chat.id, exc)
                await reply(f"⚠️ Could not transcribe the voice note: {exc}. Nothing was sent to Claude; the audio is "
                            f"saved as {where}.")
                return
            sender.chunk(quoted(text), reply_to=message.message_id)  # the outbox sends it before Claude's answer
            content = claude_message(text, path, message.caption)
            await hand_over(lambda: borrowed.submit(update, context, content))

    return MessageHandler(filters.VOICE | filters.AUDIO, on_voice)


def audio_name(message_id: int, is_audio_file: bool, item: Any) -> str:
    """A file name whose extension transcription services recognise (Telegram's voice notes are OGG/Opus)."""
    if not is_audio_file:
        return f"voice-{message_id}.ogg"
    if item.file_name:
        return str(item.file_name)
    extension = mimetypes.guess_extension(item.mime_type or "") or ".mp3"
    return f"audio-{message_id}{extension}"


def quoted(transcript: str) -> Chunk:
    """🎤 and the transcript as a quote; a transcript too long for one message is cut (Claude gets it whole)."""
    head = "🎤\n"
    room = MAX_UNITS - utf16_len(head) - 1
    body = transcript if utf16_len(transcript) <= room else transcript[: room // 2] + "…"
    quote = MessageEntity(MessageEntity.BLOCKQUOTE, utf16_len(head), utf16_len(body))
    return Chunk(head + body, (quote,))


def claude_message(transcript: str, path: Path, caption: str | None) -> str:
    """What Claude reads: a note that this is a transcribed voice note (and where the audio is), then the words."""
    note = (
        f"[The user sent a voice note, transcribed automatically (it may contain mistakes); the audio is saved at "
        f"{path.parent.name}/{path.name} (absolute path {path}).]"
    )
    return "\n".join(part for part in (note, caption, transcript) if part)
