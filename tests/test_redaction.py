"""Credentials never reach a chat or a log line: a password in a URL, the transcription key; the console's files
are private like the bot's."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from test_console import console_env, start_console

from bot_harness import OWNER, running_bot
from claude_bridge.runtime import RedactingFormatter, redact_url_credentials
from fake_transcriber import Fails, FakeTranscriber

OGG = b"OggS\x00\x02voice-note-bytes" + bytes(range(256))
PASSWORD = "hunter2-pass"


def test_the_user_and_password_of_every_url_are_blanked():
    text = "GET https://bob:hunter2@stt.example/v1 then ftp://x@y/z and http://plain.example/a@b"

    assert (
        redact_url_credentials(text) == "GET https://***@stt.example/v1 then ftp://***@y/z and http://plain.example/a@b"
    )


def test_log_lines_blank_url_passwords_and_the_extra_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s", "123:token", "sk-transcribe-key"))
    log = logging.getLogger("test.url-redaction")
    log.addHandler(handler)
    try:
        log.warning("could not reach https://bob:%s@stt.example/v1 with key %s", PASSWORD, "sk-transcribe-key")
    finally:
        log.removeHandler(handler)

    assert PASSWORD not in stream.getvalue() and "sk-transcribe-key" not in stream.getvalue()
    assert "https://***@stt.example/v1" in stream.getvalue() and "<secret>" in stream.getvalue()


@pytest.mark.real_cli
async def test_a_failed_transcription_never_shows_the_urls_password_in_the_chat_or_the_log(tmp_path, tg, api, caplog):
    caplog.set_level(logging.WARNING)
    async with FakeTranscriber(api_key="sk-voice") as stt:
        stt.enqueue(Fails(500, "the GPU caught fire"))
        url = stt.url.replace("http://", f"http://bob:{PASSWORD}@")
        async with running_bot(tmp_path, tg, api, TRANSCRIBE_URL=url, TRANSCRIBE_API_KEY="sk-voice") as bot:
            tg.push_voice(OWNER, OWNER, OGG)
            reply = await bot.reply_containing("Could not transcribe")

    assert "answered HTTP" in reply["text"] and "http://***@127.0.0.1" in reply["text"]
    assert PASSWORD not in reply["text"]
    assert "transcription failed" in caplog.text and PASSWORD not in caplog.text


async def test_the_console_writes_private_files(tmp_path, tg, api):
    console = await start_console(tmp_path, console_env(tmp_path, tg, api))
    await asyncio.wait_for(console.communicate(b"/new other\n/quit\n"), 60)

    sessions = tmp_path / "sessions"
    assert console.returncode == 0
    assert (sessions / "other").is_dir()
    for path in (sessions / "other", sessions / "other" / "files", sessions / ".bot.lock"):
        assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
