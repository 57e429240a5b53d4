"""Voice notes end to end: fake Bot API ↔ real PTB ↔ SessionManager ↔ real CLI ↔ fake Messages API, with a fake
OpenAI-compatible transcription service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot_harness import OWNER, running_bot
from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI
from fake_transcriber import Fails, FakeTranscriber, Said

pytestmark = pytest.mark.real_cli
OGG = b"OggS\x00\x02voice-note-bytes" + bytes(range(256))
KEY = "sk-voice-test"


@pytest_asyncio.fixture
async def stt() -> AsyncIterator[FakeTranscriber]:
    async with FakeTranscriber(api_key=KEY) as server:
        yield server


def voice_env(stt: FakeTranscriber) -> dict[str, str]:
    return {"TRANSCRIBE_URL": stt.url, "TRANSCRIBE_API_KEY": KEY, "TRANSCRIBE_MODEL": "whisper-large-v3"}


def saved_audio(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "sessions/default/files").iterdir())


async def test_a_voice_note_is_transcribed_shown_and_answered_by_claude(tmp_path, tg: FakeBotAPI, api: FakeAnthropic,
                                                                         stt: FakeTranscriber):
    stt.enqueue(Said("what is two plus two"))
    async with running_bot(tmp_path, tg, api, **voice_env(stt)) as bot:
        tg.push_voice(OWNER, OWNER, OGG)

        quote = await bot.reply_containing("🎤")
        answer = await bot.reply_containing("echo:")

    [seen] = stt.requests
    assert (seen.audio, seen.model, seen.authorization) == (OGG, "whisper-large-v3", f"Bearer {KEY}")
    assert seen.filename.endswith(".ogg")
    assert quote["text"] == "🎤\nwhat is two plus two"
    assert quote["entities"][0]["type"] == "blockquote"
    [request] = api.requests
    assert "voice note, transcribed" in request.last_user_text
    assert request.last_user_text.endswith("what is two plus two")
    assert "what is two plus two" in answer["text"]
    [audio] = saved_audio(tmp_path)
    assert audio.read_bytes() == OGG and audio.name in request.last_user_text


async def test_an_audio_file_is_transcribed_under_its_own_name(tmp_path, tg, api, stt):
    stt.enqueue(Said("minutes of the meeting"))
    async with running_bot(tmp_path, tg, api, **voice_env(stt)) as bot:
        tg.push_audio(OWNER, OWNER, "meeting.m4a", b"m4a-bytes", caption="summarise this", mime_type="audio/mp4")

        await bot.reply_containing("echo:")

    assert stt.requests[0].filename.endswith("meeting.m4a") and stt.requests[0].audio == b"m4a-bytes"
    assert "summarise this\nminutes of the meeting" in api.requests[0].last_user_text


async def test_without_transcribe_url_the_reply_says_how_to_turn_voice_on_and_the_audio_is_kept(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api) as bot:
        tg.push_voice(OWNER, OWNER, OGG)

        reply = await bot.reply_containing("Voice notes are off")

    [audio] = saved_audio(tmp_path)
    assert audio.read_bytes() == OGG
    assert f"files/{audio.name}" in reply["text"] and "TRANSCRIBE_URL" in reply["text"]
    assert not api.requests


async def test_a_failing_transcription_service_is_shown_and_nothing_reaches_claude(tmp_path, tg, api, stt):
    stt.enqueue(Fails(500, "the GPU caught fire"))
    async with running_bot(tmp_path, tg, api, **voice_env(stt)) as bot:
        tg.push_voice(OWNER, OWNER, OGG)

        reply = await bot.reply_containing("Could not transcribe")

    assert "HTTP 500: the GPU caught fire" in reply["text"]
    [audio] = saved_audio(tmp_path)
    assert f"files/{audio.name}" in reply["text"] and audio.read_bytes() == OGG
    assert not api.requests


async def test_a_voice_note_over_the_download_limit_is_refused_before_downloading(tmp_path, tg, api, stt):
    async with running_bot(tmp_path, tg, api, MAX_DOWNLOAD_MB="1", **voice_env(stt)) as bot:
        tg.push_voice(OWNER, OWNER, b"x" * (2**20 + 1))

        await bot.reply_containing("at most 1 MB")

    assert not stt.requests and not api.requests
    assert not tg.calls_to("download")


async def test_a_text_sent_right_after_a_voice_note_reaches_claude_after_it(tmp_path, tg, api, stt):
    stt.enqueue(Said("first the voice note", delay=2.0))  # a slow transcription
    async with running_bot(tmp_path, tg, api, **voice_env(stt)) as bot:
        tg.push_voice(OWNER, OWNER, OGG)
        tg.push_text(OWNER, "then this text")
        await bot.reply_containing("echo: then this text", timeout=60)

    first, second = (request.last_user_text for request in api.requests)
    assert first.endswith("first the voice note") and second == "then this text"
