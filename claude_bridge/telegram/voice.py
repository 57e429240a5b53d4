"""Voice notes and audio files, once saved (uploads.py): their words (claude_bridge.voice), shown quoted with 🎤,
and the message Claude reads; what the user is told when they cannot be transcribed. app.py's handler runs them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from telegram import MessageEntity

from claude_bridge.settings import TranscribeSettings
from claude_bridge.telegram.render import MAX_UNITS, Chunk, utf16_len
from claude_bridge.voice import transcribe

HOW_TO_TURN_ON = (
    "To turn voice notes on, set TRANSCRIBE_URL in the bot's .env and restart it: the base URL of an "
    "OpenAI-compatible speech-to-text API (e.g. https://api.openai.com/v1 with TRANSCRIBE_API_KEY, Groq, or a "
    "local faster-whisper or whisper.cpp server), or `local` to transcribe on this machine with faster-whisper. "
    "README.md, Voice notes, has the details."
)


async def words_of(path: Path, settings: TranscribeSettings) -> str:
    """The transcript of a saved audio file; TranscriptionError says why not."""
    return await transcribe(await asyncio.to_thread(path.read_bytes), path.name, settings)


def _where(path: Path) -> str:
    return f"{path.parent.name}/{path.name} in session “{path.parent.parent.name}”"


def voice_off(path: Path) -> str:
    saved = f"It is saved as {_where(path)}."
    return f"🎤 Voice notes are off, so this one was not sent to Claude. {saved}\n\n{HOW_TO_TURN_ON}"


def not_transcribed(path: Path, why: Exception) -> str:
    return (
        f"⚠️ Could not transcribe the voice note: {why}. Nothing was sent to Claude; the audio is saved as "
        f"{_where(path)}."
    )


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
